package runtime_test

import (
	"os"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

func TestMain(m *testing.M) { os.Exit(runtimetest.Main(m)) }
