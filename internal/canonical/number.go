package canonical

import (
	"fmt"
	"math"
	"strconv"
)

// maxExactInt is 2^53: every integer of magnitude up to it is a float64.
const maxExactInt = 1 << 53

// appendFloat appends f in the ECMAScript Number.prototype.toString form that
// RFC 8785 section 3.2.2.3 prescribes.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("encode number %v: %w", f, ErrNumber)
	}
	if f == 0 { // also -0, which ECMAScript prints as "0"
		return append(dst, '0'), nil
	}
	// strconv's shortest round-trip digits are the digits ECMAScript asks for;
	// only their layout differs, so take them in scientific form and re-lay them.
	var sci [32]byte
	b := strconv.AppendFloat(sci[:0], f, 'e', -1, 64)
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	var digs [24]byte
	k := 0
	i := 0
	for ; b[i] != 'e'; i++ {
		if b[i] != '.' {
			digs[k] = b[i]
			k++
		}
	}
	exp := 0
	neg := b[i+1] == '-'
	for _, c := range b[i+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		exp = -exp
	}
	// ECMAScript's n: the value is 0.d1d2…dk × 10^n.
	n := exp + 1
	d := digs[:k]
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst, nil
}

// appendFloat32 appends f as encoding/json would write it (its shortest
// float32 decimal) read back as a float64, so a float32 encodes the same
// whether it is passed directly or inside a struct that goes through
// encoding/json.
func appendFloat32(dst []byte, f float32) ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return dst, fmt.Errorf("encode number %v: %w", f, ErrNumber)
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)
	f64, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return dst, fmt.Errorf("encode number %v: %w", f, ErrNumber)
	}
	return appendFloat(dst, f64)
}

// appendInt appends a signed integer. Integers within ±2^53 are written as
// their decimal digits (which is what ECMAScript prints for them); larger ones
// are accepted only when a float64 holds them exactly, and are then printed as
// that float64 (so 2^60 becomes 1152921504606847000, as in JavaScript).
func appendInt(dst []byte, i int64) ([]byte, error) {
	if -maxExactInt <= i && i <= maxExactInt {
		return strconv.AppendInt(dst, i, 10), nil
	}
	f := float64(i)
	// 2^63 is a float64 but not an int64; converting it back is undefined.
	if f == 0x1p63 || int64(f) != i {
		return dst, fmt.Errorf("encode integer %d: not exactly representable as float64: %w", i, ErrNumber)
	}
	return appendFloat(dst, f)
}

// appendUint is appendInt for unsigned integers.
func appendUint(dst []byte, u uint64) ([]byte, error) {
	if u <= maxExactInt {
		return strconv.AppendUint(dst, u, 10), nil
	}
	f := float64(u)
	if f == 0x1p64 || uint64(f) != u {
		return dst, fmt.Errorf("encode integer %d: not exactly representable as float64: %w", u, ErrNumber)
	}
	return appendFloat(dst, f)
}
