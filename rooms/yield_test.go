package rooms

import "testing"

func TestNewer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b Version
		want bool
	}{
		{"same epoch, higher version", Version{Epoch: 1, Version: 9}, Version{Epoch: 1, Version: 8}, true},
		{"same epoch, lower version", Version{Epoch: 1, Version: 7}, Version{Epoch: 1, Version: 8}, false},
		{"same copy", Version{Epoch: 1, Version: 8}, Version{Epoch: 1, Version: 8}, false},
		{"restored from it, lower version", Version{Epoch: 2, Version: 1, From: 1}, Version{Epoch: 1, Version: 90}, true},
		{"its origin, higher version", Version{Epoch: 1, Version: 90}, Version{Epoch: 2, Version: 1, From: 1}, false},
		{"two restores of one ticket: version", Version{Epoch: 2, Version: 5, From: 1}, Version{Epoch: 3, Version: 4, From: 1}, true},
		{"two restores of one ticket: epoch", Version{Epoch: 2, Version: 4, From: 1}, Version{Epoch: 3, Version: 4, From: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Newer(tt.a, tt.b); got != tt.want {
				t.Errorf("Newer(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if tt.a != tt.b && Newer(tt.b, tt.a) == tt.want {
				t.Errorf("Newer(%+v, %+v) = Newer of the reverse: both or neither would yield", tt.b, tt.a)
			}
		})
	}
}

// TestYield: a copy told of a newer one closes its members with 1012 and
// goes without room.closed; told of an older one, it stays.
func TestYield(t *testing.T) {
	t.Parallel()
	var events []Event
	m := NewManager(Config{Instance: "m1", Codes: &seqCodes{}, Events: func(e Event) { events = append(events, e) }})
	host := &fakeMember{}
	r := create(t, m, host, 8)
	v := r.VersionOf()
	if m.Yield(r.Code, Version{Epoch: v.Epoch, Version: v.Version}) {
		t.Fatal("yielded to its own copy")
	}
	if !m.Yield(r.Code, Version{Epoch: 7, Version: 1, From: v.Epoch}) {
		t.Fatal("did not yield to a copy restored from it")
	}
	if code, _ := host.closed(); code != 1012 || m.Held(r.Code) || m.Ended(r.Code) {
		t.Errorf("after yielding: host closed %d, held %v, ended %v; want 1012, false, false", code, m.Held(r.Code), m.Ended(r.Code))
	}
	for _, e := range events {
		if e.Type == EventRoomClosed {
			t.Errorf("a yielded room sent %s: it lives on elsewhere", e.Type)
		}
	}
}
