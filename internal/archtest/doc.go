// Package archtest holds no code: its tests check the module's whole
// import graph against the layout rules DEVELOPMENT.md states, and that
// README's "Reading the source" names every package.
package archtest
