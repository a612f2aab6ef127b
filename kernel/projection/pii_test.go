package projection

import "testing"

// Ensure e-mail addresses, phone numbers and Luhn-valid card numbers are
// redacted inside text, and that look-alikes are left alone.
func TestRedactPII(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain text", in: "nothing to see here", want: "nothing to see here"},
		{name: "email", in: "write to ada.lovelace+news@example.co.uk today", want: "write to [REDACTED_EMAIL] today"},
		{name: "two emails", in: "a@b.io,c@d.org", want: "[REDACTED_EMAIL],[REDACTED_EMAIL]"},
		{name: "at sign without address", in: "meet @ noon, @handle", want: "meet @ noon, @handle"},
		{name: "international phone", in: "call +1 (555) 123-4567 now", want: "call [REDACTED_PHONE] now"},
		{name: "E.164 phone", in: "tel:+491701234567", want: "tel:[REDACTED_PHONE]"},
		{name: "UK phone with spaces", in: "+44 20 7946 0958", want: "[REDACTED_PHONE]"},
		{name: "US dashed phone", in: "555-123-4567", want: "[REDACTED_PHONE]"},
		{name: "US parenthesised phone", in: "(555) 123-4567", want: "[REDACTED_PHONE]"},
		{name: "dotted phone", in: "555.123.4567", want: "[REDACTED_PHONE]"},
		{name: "ten digit run", in: "phone 5551234567.", want: "phone [REDACTED_PHONE]."},
		{name: "short number kept", in: "order 12345 for 3 items", want: "order 12345 for 3 items"},
		{name: "date kept", in: "2024-01-15", want: "2024-01-15"},
		{name: "decimal kept", in: "pi is 3.14159265358979", want: "pi is 3.14159265358979"},
		{name: "IPv4 kept", in: "host 192.168.100.200", want: "host 192.168.100.200"},
		{name: "version kept", in: "v1.22.3", want: "v1.22.3"},
		{name: "identifier kept", in: "id A1234567890 and x_5551234567", want: "id A1234567890 and x_5551234567"},
		{name: "visa card luhn valid", in: "card 4111 1111 1111 1111 ok", want: "card [REDACTED_CARD] ok"},
		{name: "visa card luhn invalid", in: "card 4111 1111 1111 1112 ok", want: "card 4111 1111 1111 1112 ok"},
		{name: "16 digits plain valid", in: "4242424242424242", want: "[REDACTED_CARD]"},
		{name: "16 digits plain invalid", in: "4242424242424241", want: "4242424242424241"},
		{name: "dashed mastercard", in: "5555-5555-5555-4444", want: "[REDACTED_CARD]"},
		{name: "amex 15 digits", in: "3782 822463 10005", want: "[REDACTED_CARD]"},
		{name: "19 digits luhn invalid kept", in: "6011000990139424000", want: "6011000990139424000"},
		{name: "19 digits luhn valid", in: "4222222222222222224", want: "[REDACTED_CARD]"},
		{name: "13 digits luhn valid", in: "4222222222222", want: "[REDACTED_CARD]"},
		{name: "luhn invalid 15 digits reads as phone", in: "123456789012345", want: "[REDACTED_PHONE]"},
		{name: "very long digit run kept", in: "12345678901234567890123", want: "12345678901234567890123"},
		{name: "digits after email", in: "x@y.com 5551234567", want: "[REDACTED_EMAIL] [REDACTED_PHONE]"},
		{name: "non-ASCII around", in: "тел. +7 912 345-67-89 ✓", want: "тел. [REDACTED_PHONE] ✓"},
		{name: "separator at end excluded", in: "call 555-123-4567-", want: "call [REDACTED_PHONE]-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := redactPII(tc.in)
			if got != tc.want {
				t.Fatalf("redactPII(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := redactPII(got); again != got {
				t.Fatalf("not idempotent: %q then %q", got, again)
			}
		})
	}
}

// Ensure the Luhn check itself against known numbers.
func TestLuhn(t *testing.T) {
	tests := []struct {
		name, digits string
		want         bool
	}{
		{name: "visa test", digits: "4111111111111111", want: true},
		{name: "off by one", digits: "4111111111111112"},
		{name: "ISO example", digits: "79927398713", want: true},
		{name: "ISO example wrong check digit", digits: "79927398710"},
		{name: "zero", digits: "0", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := luhn([]byte(tc.digits)); got != tc.want {
				t.Fatalf("luhn(%s) = %v, want %v", tc.digits, got, tc.want)
			}
		})
	}
}

// Ensure strings that need no redaction cost no allocation.
func TestRedactPIINoAlloc(t *testing.T) {
	for _, s := range []string{"plain words only", "order 12345 on 2024-01-15", "see 3.14159", "a@b", "me @ home.", ""} {
		if n := testing.AllocsPerRun(100, func() { _ = redactPII(s) }); n != 0 {
			t.Errorf("redactPII(%q) allocates %v times", s, n)
		}
	}
}
