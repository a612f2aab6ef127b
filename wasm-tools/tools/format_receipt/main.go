// format_receipt renders a payment receipt line from an order id, an amount
// in minor units and a currency. It is the bundled tool written in Go: built
// with -buildmode=c-shared it is a reactor (nanovm_call, export_wasip1.go)
// and runs pooled; built natively, main serves one call as a command, so
// the logic tests without a wasm toolchain.
package main

import (
	"errors"
	"fmt"
	"math"

	"github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/go/nanovm"
)

func main() { nanovm.Run(formatReceipt) }

// formatReceipt is deterministic: the same arguments give the same bytes,
// so a replay matches.
func formatReceipt(args map[string]any) (any, error) {
	order, ok := args["order_id"].(string)
	if !ok || order == "" {
		return nil, errors.New("order_id must be a non-empty string")
	}
	amount, ok := args["amount"].(float64)
	if !ok || amount < 0 || amount != math.Trunc(amount) || amount > 1e15 {
		return nil, errors.New("amount must be a non-negative whole number of minor units")
	}
	currency := "USD"
	if c, ok := args["currency"].(string); ok && c != "" {
		currency = c
	}
	minor := int64(amount)
	return map[string]any{
		"order_id": order,
		"amount":   minor,
		"currency": currency,
		"text":     fmt.Sprintf("Order %s: %s %d.%02d", order, currency, minor/100, minor%100),
	}, nil
}
