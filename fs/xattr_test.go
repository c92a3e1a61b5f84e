package fs

import "testing"

func TestXattrEscaping(t *testing.T) {
	for _, prefix := range []string{"trusted.overlay.", "user.overlay."} {
		ov := &overlay{xattrPrefix: prefix}
		cases := []struct {
			stored, shown string
			visible       bool
		}{
			{"user.mime", "user.mime", true},
			{"security.capability", "security.capability", true},
			{prefix + "opaque", "", false},
			{prefix + "origin", "", false},
			{prefix + "overlay.opaque", prefix + "opaque", true},
			{prefix + "overlay.overlay.x", prefix + "overlay.x", true},
		}
		for _, c := range cases {
			shown, ok := ov.shownXattr(c.stored)
			if ok != c.visible || shown != c.shown {
				t.Errorf("%s: shownXattr(%q) = %q, %v; want %q, %v", prefix, c.stored, shown, ok, c.shown, c.visible)
			}
			if ov.isPrivateXattr(c.stored) == c.visible {
				t.Errorf("%s: isPrivateXattr(%q) = %v", prefix, c.stored, !c.visible)
			}
			if c.visible {
				if back := ov.storedXattr(shown); back != c.stored {
					t.Errorf("%s: storedXattr(%q) = %q, want %q", prefix, shown, back, c.stored)
				}
			}
		}
	}
}
