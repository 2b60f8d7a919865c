package routing

import (
	"fmt"
	"slices"
	"testing"
)

// TestRendezvous: every order of the same machines picks the same one;
// a machine that leaves moves only the codes it won; codes spread.
func TestRendezvous(t *testing.T) {
	t.Parallel()
	ids := []string{"0a1b2c3d4e5f01", "0a1b2c3d4e5f02", "0a1b2c3d4e5f03", "0a1b2c3d4e5f04"}
	if got := Rendezvous("ABC123", nil); got != "" {
		t.Fatalf("Rendezvous(no machines) = %q, want \"\"", got)
	}
	wins := map[string]int{}
	for i := range 400 {
		code := fmt.Sprintf("C%05d", i)
		a := Rendezvous(code, ids)
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		if b := Rendezvous(code, rev); a != b {
			t.Fatalf("Rendezvous(%s) = %s or %s by the list's order", code, a, b)
		}
		wins[a]++
		gone := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == ids[0] })
		if c := Rendezvous(code, gone); a != ids[0] && c != a {
			t.Fatalf("Rendezvous(%s) moved from %s to %s when %s left", code, a, c, ids[0])
		}
	}
	for _, id := range ids {
		if wins[id] < 60 {
			t.Errorf("%s decides %d of 400 codes: not spread (%v)", id, wins[id], wins)
		}
	}
}
