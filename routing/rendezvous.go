package routing

import (
	"bytes"
	"crypto/sha256"
)

// Rendezvous is the machine of ids that decides code (docs/protocol.md "One
// owner"): the one whose SHA-256 of code, a zero byte and its id is
// highest. Every machine with the same list picks the same one, and a
// machine that joins or leaves moves only the codes it wins or held. ""
// for no ids.
func Rendezvous(code string, ids []string) string {
	var best string
	var bestSum [sha256.Size]byte
	for _, id := range ids {
		h := sha256.New()
		h.Write([]byte(code))
		h.Write([]byte{0})
		h.Write([]byte(id))
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		if best == "" || bytes.Compare(sum[:], bestSum[:]) > 0 {
			best, bestSum = id, sum
		}
	}
	return best
}
