package main

import (
	"reflect"
	"testing"
)

// Ensure formatReceipt renders minor units and refuses bad arguments.
func TestFormatReceipt(t *testing.T) {
	tests := []struct {
		name    string
		args    map[string]any
		want    any
		wantErr string
	}{
		{name: "default currency", args: map[string]any{"order_id": "o-1", "amount": 50005.0},
			want: map[string]any{"order_id": "o-1", "amount": int64(50005), "currency": "USD", "text": "Order o-1: USD 500.05"}},
		{name: "currency", args: map[string]any{"order_id": "o-2", "amount": 7.0, "currency": "EUR"},
			want: map[string]any{"order_id": "o-2", "amount": int64(7), "currency": "EUR", "text": "Order o-2: EUR 0.07"}},
		{name: "fractional", args: map[string]any{"order_id": "o-3", "amount": 1.5}, wantErr: "amount must be a non-negative whole number of minor units"},
		{name: "negative", args: map[string]any{"order_id": "o-3", "amount": -1.0}, wantErr: "amount must be a non-negative whole number of minor units"},
		{name: "no order", args: map[string]any{"amount": 1.0}, wantErr: "order_id must be a non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := formatReceipt(tt.args)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}
