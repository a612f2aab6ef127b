package projection

// Field names that look secret, written lowercase without '_' or '-'. A long
// word matches as the end of the normalized name ("stripe_api_key",
// "userPassword", "x-auth-token"); a short one, which would otherwise hit
// innocent words ("japan", "spin"), only as the whole name or its last word.
var (
	secretSuffixes = []string{
		"password", "passwd", "passphrase", "secret", "token",
		"apikey", "accesskey", "privatekey", "secretkey", "signingkey",
		"authorization", "credential", "credentials", "cardnumber", "cookie",
	}
	secretWords = []string{"auth", "pwd", "pan", "cvv", "cvc", "ssn", "iban", "pin", "otp"}
)

// maxSecretLen is the longest entry in either list: only that many trailing
// normalized bytes of a name are ever compared.
const maxSecretLen = len("authorization")

// IsSecretName reports whether an object field named name holds a secret in
// the LLM projection's eyes. Case is ignored, as are '_' and '-'. A name
// matches when it ends with one of password, passwd, passphrase, secret,
// token, apikey, accesskey, privatekey, secretkey, signingkey, authorization,
// credential(s), cardnumber or cookie; or when it is, or ends with the word,
// auth, pwd, pan, cvv, cvc, ssn, iban, pin or otp, a word beginning after '_',
// '-', '.', a space, or a lower-to-upper case change ("userPin").
func IsSecretName(name string) bool {
	// Normalize the tail of name backwards into a fixed buffer, remembering
	// where each byte came from so word starts can be checked.
	var norm [maxSecretLen]byte
	var from [maxSecretLen]int
	n := 0
	for i := len(name) - 1; i >= 0 && n < maxSecretLen; i-- {
		c := name[i]
		if c == '_' || c == '-' {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		n++
		norm[maxSecretLen-n] = c
		from[maxSecretLen-n] = i
	}
	tail := string(norm[maxSecretLen-n:]) // does not escape: no allocation
	for _, w := range secretSuffixes {
		if len(w) <= len(tail) && tail[len(tail)-len(w):] == w {
			return true
		}
	}
	for _, w := range secretWords {
		if len(w) <= len(tail) && tail[len(tail)-len(w):] == w && wordStart(name, from[maxSecretLen-len(w)]) {
			return true
		}
	}
	return false
}

// wordStart reports whether a word begins at name[i].
func wordStart(name string, i int) bool {
	if i == 0 {
		return true
	}
	prev, c := name[i-1], name[i]
	switch prev {
	case '_', '-', '.', ' ':
		return true
	}
	return 'A' <= c && c <= 'Z' && ('a' <= prev && prev <= 'z' || '0' <= prev && prev <= '9')
}
