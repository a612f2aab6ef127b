package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
)

// validChain builds a chain of n envelopes the way the store links them.
func validChain(tb testing.TB, n int) []store.ChainLink {
	tb.Helper()
	prev := store.GenesisHash
	var links []store.ChainLink
	for i := 1; i <= n; i++ {
		e := store.Envelope{
			Seq: uint64(i), Kind: store.EnvelopeKindStep, TraceID: fmt.Sprint("exec-", i%2), StepIndex: i / 2, StepID: "s",
			PolicyHash: "pol", StateHash: fmt.Sprint("state-", i), Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"x"}`, i)),
			ModuleSHA256: "mod", RecordedAt: time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC), PrevHash: prev,
		}
		h, err := e.ComputeHash()
		if err != nil {
			tb.Fatal(err)
		}
		e.Hash, prev = h, h
		v, err := json.Marshal(e)
		if err != nil {
			tb.Fatal(err)
		}
		links = append(links, store.ChainLink{Key: uint64(i), Value: v})
	}
	return links
}

func verifyLinks(links []store.ChainLink, headSeq uint64, headHash string) store.VerifyReport {
	var v store.ChainVerifier
	for _, l := range links {
		if !v.Add(l) {
			break
		}
	}
	return v.End(headSeq, headHash)
}

// sameEnvelope reports whether two stored values decode to envelopes the
// hash cannot tell apart (whitespace, key order, escapes may differ).
func sameEnvelope(a, b []byte) bool {
	var ea, eb store.Envelope
	if json.Unmarshal(a, &ea) != nil || json.Unmarshal(b, &eb) != nil {
		return false
	}
	ha, erra := ea.ComputeHash()
	hb, errb := eb.ComputeHash()
	return erra == nil && errb == nil && ha == hb && ea.Hash == eb.Hash && ea.Seq == eb.Seq
}

// FuzzVerify ensures the verifier never panics on a mutated chain and
// reports every mutation that changes what an envelope says.
func FuzzVerify(f *testing.F) {
	f.Add(uint8(2), uint16(10), byte('x'), false, false)
	f.Add(uint8(0), uint16(0), byte('{'), true, false)
	f.Add(uint8(4), uint16(3), byte(0), false, true)
	f.Add(uint8(1), uint16(200), byte('"'), false, false)
	f.Fuzz(func(t *testing.T, idx uint8, pos uint16, b byte, insert, drop bool) {
		links := validChain(t, 5)
		headSeq, headHash := uint64(5), ""
		var last store.Envelope
		_ = json.Unmarshal(links[4].Value, &last)
		headHash = last.Hash
		if rep := verifyLinks(links, headSeq, headHash); !rep.OK {
			t.Fatalf("valid chain rejected: %+v", rep.Broken)
		}
		i := int(idx) % len(links)
		orig := links[i].Value
		mut := bytes.Clone(orig)
		p := int(pos) % (len(mut) + 1)
		switch {
		case drop && p < len(mut):
			mut = append(mut[:p], mut[p+1:]...)
		case insert || p == len(mut):
			mut = append(mut[:p], append([]byte{b}, mut[p:]...)...)
		default:
			mut[p] = b
		}
		links[i].Value = mut
		rep := verifyLinks(links, headSeq, headHash)
		if !rep.OK && rep.Broken == nil {
			t.Fatal("not OK without a broken link")
		}
		if rep.OK && !sameEnvelope(orig, mut) {
			t.Fatalf("mutation of seq %d not detected:\n%s\n%s", i+1, orig, mut)
		}
		if !rep.OK && rep.Broken.Seq != uint64(i+1) && rep.Broken.Seq != uint64(i+2) {
			t.Fatalf("mutation of seq %d reported at seq %d (%s)", i+1, rep.Broken.Seq, rep.Broken.Reason)
		}
	})
}
