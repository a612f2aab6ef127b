package main

import "errors"

func cmdServe(args []string, cio *cliIO) error { return errors.New("serve: pending mcpserver") }
