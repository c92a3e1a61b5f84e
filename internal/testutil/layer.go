package testutil

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the type of object an [Item] describes.
type Kind byte

// The kinds of objects. They are letters so that tables of items read
// short: {Path: "d/a", Kind: 'f', Data: "a\n"}.
const (
	File          Kind = 'f' // regular file holding Data
	Dir           Kind = 'd' // directory
	Symlink       Kind = 'l' // symbolic link to Data
	Hardlink      Kind = 'h' // another name of the item at path Data, in the same layer
	Fifo          Kind = 'p' // named pipe
	Device        Kind = 'c' // character device numbered Data ("1:3"; empty: 0:0)
	Whiteout      Kind = 'w' // the name deleted: char 0/0 in a directory, .wh.<name> in a tarball
	XattrWhiteout Kind = 'x' // an empty file marked trusted.overlay.whiteout (honoured in a directory marked trusted.overlay.opaque=x)
)

// Item is one object of a layer. Parents are made as needed (0755).
type Item struct {
	Path string
	Kind Kind
	// Data: the contents of a File, the target of a Symlink or Hardlink,
	// the numbers of a Device.
	Data string
	// Mode holds the permission bits; 0 means the kind's default: 0755
	// for a directory, 0777 for a symbolic link, 0 for a whiteout, 0644
	// for the others.
	Mode     uint32
	UID, GID int
	// Xattrs are set on the object: {"trusted.overlay.opaque": "y"} makes
	// a directory opaque. In a tarball they are SCHILY.xattr. records.
	Xattrs map[string]string
	// Sparse, for a File: Data is written at this offset, after a hole.
	Sparse int64
	// Optional items are left out when their path exists already in the
	// layer or cannot be made (a parent is not a directory); BuildDir only.
	Optional bool
}

// FixedTime is the access and modification time of everything BuildDir
// makes, and the modification time of every entry Tar writes, so that
// times can be compared across copies of the same layers.
var FixedTime = time.Date(2020, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

// Spec reads items from a one-line notation each, for the plain cases
// (no owners, modes or other xattrs):
//
//	"d/"          a directory
//	"d/!opaque"   an opaque directory (trusted.overlay.opaque=y)
//	"f=text"      a file holding text ("f" alone: an empty file)
//	"l->target"   a symbolic link
//	"h=>target"   a hard link to the item at target
//	"p!fifo"      a named pipe
//	"w!wh"        a whiteout
//	"x!xwh"       an xattr whiteout
//
// The first marker found, in this order, decides: a file whose text holds
// "->" or starts with ">" needs an Item literal.
func Spec(lines ...string) []Item {
	items := make([]Item, 0, len(lines))
	for _, s := range lines {
		var it Item
		if name, ok := strings.CutSuffix(s, "/!opaque"); ok {
			it = Item{Path: name, Kind: Dir, Xattrs: map[string]string{"trusted.overlay.opaque": "y"}}
		} else if name, ok := strings.CutSuffix(s, "/"); ok {
			it = Item{Path: name, Kind: Dir}
		} else if name, ok := strings.CutSuffix(s, "!fifo"); ok {
			it = Item{Path: name, Kind: Fifo}
		} else if name, ok := strings.CutSuffix(s, "!xwh"); ok {
			it = Item{Path: name, Kind: XattrWhiteout}
		} else if name, ok := strings.CutSuffix(s, "!wh"); ok {
			it = Item{Path: name, Kind: Whiteout}
		} else if name, target, ok := strings.Cut(s, "->"); ok {
			it = Item{Path: name, Kind: Symlink, Data: target}
		} else if name, target, ok := strings.Cut(s, "=>"); ok {
			it = Item{Path: name, Kind: Hardlink, Data: target}
		} else {
			name, text, _ := strings.Cut(s, "=")
			it = Item{Path: name, Kind: File, Data: text}
		}
		items = append(items, it)
	}
	return items
}

// perm returns the item's permission bits, the kind's default if Mode is 0.
func (it Item) perm() uint32 {
	switch {
	case it.Mode != 0:
		return it.Mode
	case it.Kind == Dir:
		return 0o755
	case it.Kind == Symlink:
		return 0o777
	case it.Kind == Whiteout:
		return 0
	}
	return 0o644
}

// devNumbers parses a Device's Data, "major:minor".
func (it Item) devNumbers() (major, minor uint32, err error) {
	if it.Data == "" {
		return 0, 0, nil
	}
	if _, err := fmt.Sscanf(it.Data, "%d:%d", &major, &minor); err != nil {
		return 0, 0, fmt.Errorf("%s: device numbers %q: want major:minor", it.Path, it.Data)
	}
	return major, minor, nil
}
