// Package archtest holds no code: its test checks the module's whole
// import graph against the layout rules DEVELOPMENT.md states.
package archtest
