package projection

import "testing"

// Ensure field names are judged secret by the documented list, as whole names,
// suffixes or last words, and that look-alike words are not.
func TestIsSecretName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"password", true}, {"Password", true}, {"user_password", true}, {"userPassword", true},
		{"PASSWD", true}, {"db-passphrase", true}, {"client_secret", true}, {"secret", true},
		{"token", true}, {"access_token", true}, {"X-Auth-Token", true}, {"csrftoken", true},
		{"api_key", true}, {"apiKey", true}, {"stripe_api_key", true}, {"STRIPE-APIKEY", true},
		{"aws_access_key", true}, {"private_key", true}, {"secret_key", true}, {"authorization", true},
		{"Authorization", true}, {"auth", true}, {"basic_auth", true}, {"proxyAuth", true},
		{"credential", true}, {"credentials", true}, {"card_number", true}, {"cardNumber", true},
		{"pan", true}, {"card_pan", true}, {"cvv", true}, {"CVC", true}, {"ssn", true}, {"user.ssn", true},
		{"iban", true}, {"pin", true}, {"userPin", true}, {"pwd", true}, {"session_cookie", true}, {"otp", true},
		// Look-alikes and innocent names.
		{"japan", false}, {"span", false}, {"spin", false}, {"author", false}, {"oauth_provider", false},
		{"max_tokens", false}, {"token_count", false}, {"password_policy", false}, {"passing", false},
		{"company", false}, {"pinned", false}, {"name", false}, {"email", false}, {"", false},
		{"lessn", false}, {"amount", false}, {"tokenizer", false}, {"ssnumber", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsSecretName(tc.name); got != tc.want {
				t.Fatalf("IsSecretName(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}
