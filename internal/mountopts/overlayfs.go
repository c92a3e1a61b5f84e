package mountopts

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/unionfuse/unionfuse/fs"
)

// Options that fuse-overlayfs takes, with its meaning, so that unionfuse
// can stand in for it (as podman's mount_program, for instance).

// fuseOverlayfsFlags are its options without a value.
var fuseOverlayfsFlags = map[string]bool{
	"squash_to_root": true, "static_nlink": true, "noacl": true,
	"volatile": true, "allow_other": true, "debug": true,
	"default_permissions": true, // always on: the kernel checks permissions
}

// applyFuseOverlayfs records a fuse-overlayfs option. handled is false for
// an option it does not know.
func (o *Options) applyFuseOverlayfs(item, key, value string, hasValue bool) (handled bool, err error) {
	if fuseOverlayfsFlags[key] {
		if hasValue {
			return true, fmt.Errorf("mount option %q takes no value", item)
		}
		switch key {
		case "squash_to_root":
			zero := uint32(0)
			o.SquashUID, o.SquashGID = &zero, &zero
		case "static_nlink":
			o.StaticNlink = true
		case "noacl":
			o.NoACL = true
		case "volatile":
			o.NoFsync = true
		case "allow_other":
			o.AllowOther = true
		case "debug":
			o.Debug = true
		}
		return true, nil
	}
	switch key {
	case "uidmapping", "gidmapping", "squash_to_uid", "squash_to_gid", "fsync",
		"xino", "redirect_dir", "index", "metacopy", "context", "xattr_permissions", "timeout", "passthrough", "writeback", "max_nodes":
	default:
		return false, nil
	}
	if !hasValue || value == "" {
		return true, fmt.Errorf("mount option %q needs a value", item)
	}
	value = unescape(value)
	switch key {
	case "uidmapping", "gidmapping":
		maps, err := ParseIDMaps(value)
		if err != nil {
			return true, fmt.Errorf("mount option %q: %w", item, err)
		}
		if key == "uidmapping" {
			o.UIDMap = maps
		} else {
			o.GIDMap = maps
		}
	case "squash_to_uid", "squash_to_gid":
		id, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return true, fmt.Errorf("mount option %q: not an id", item)
		}
		v := uint32(id)
		if key == "squash_to_uid" {
			o.SquashUID = &v
		} else {
			o.SquashGID = &v
		}
	case "fsync":
		switch value {
		case "0":
			o.NoFsync = true
		case "1":
			o.NoFsync = false
		default:
			return true, fmt.Errorf("mount option %q: want fsync=0 or fsync=1", item)
		}
	case "xino":
		switch value {
		case "off":
			o.XinoOff = true
		case "on", "auto":
			o.XinoOff = false
		default:
			return true, fmt.Errorf("mount option %q: want xino=on, auto or off", item)
		}
	case "passthrough":
		// unionfuse's own: FUSE passthrough of file data (root, Linux
		// 6.9+) is on by default; off serves every read and write, as a
		// mount without root does.
		switch value {
		case "off":
			o.NoPassthrough = true
		case "on":
			o.NoPassthrough = false
		default:
			return true, fmt.Errorf("mount option %q: want passthrough=on or passthrough=off", item)
		}
	case "writeback":
		// unionfuse's own: the kernel's writeback cache (writes kept in
		// its page cache, sent later) is on by default where no
		// passthrough serves the data and index=off; on turns
		// passthrough off.
		switch value {
		case "auto":
			o.Writeback = fs.WritebackAuto
		case "on":
			o.Writeback = fs.WritebackOn
		case "off":
			o.Writeback = fs.WritebackOff
		default:
			return true, fmt.Errorf("mount option %q: want writeback=auto, on or off", item)
		}
	case "max_nodes":
		// unionfuse's own: how many inodes the kernel may keep looked up
		// before the least recently used are dropped; 0 for no bound.
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return true, fmt.Errorf("mount option %q: want a count of inodes, 0 for no bound", item)
		}
		o.MaxNodes = n
		if n == 0 {
			o.MaxNodes = -1
		}
	case "redirect_dir":
		switch value {
		case "on":
			o.Redirect = fs.RedirectOn
		case "follow":
			o.Redirect = fs.RedirectFollow
		case "off":
			o.Redirect = fs.RedirectOff
		case "nofollow":
			o.Redirect = fs.RedirectNoFollow
		default:
			return true, fmt.Errorf("mount option %q: want redirect_dir=on, off, follow or nofollow", item)
		}
	case "index":
		// The kernel's: hard links of lower files survive copy-up.
		return true, onOff(item, key, value, &o.Index)
	case "metacopy":
		// The kernel's: a change of metadata alone copies no data.
		return true, onOff(item, key, value, &o.Metacopy)
	case "context", "timeout":
		// SELinux labels (no SELinux policy applies to FUSE files here)
		// and fuse-overlayfs's cache timeout (unionfuse manages the
		// kernel's caches itself): accepted, without effect.
	case "xattr_permissions":
		if value != "0" {
			return true, fmt.Errorf("mount option %q: storing permissions in xattrs is not supported (only xattr_permissions=0)", item)
		}
	}
	return true, nil
}

// ParseIDMaps parses fuse-overlayfs's id mappings: DISK:SHOWN:LEN triples
// joined by colons ("0:100000:65536:65536:1000:1"), each saying that the ids
// DISK..DISK+LEN-1 stored in the layers show through the mount as
// SHOWN..SHOWN+LEN-1. podman writes its container's --uidmap this way
// (container id first, host id second), with a leading colon, which is
// allowed.
func ParseIDMaps(s string) ([]fs.IDMap, error) {
	fields := strings.Split(strings.TrimPrefix(s, ":"), ":")
	if len(fields)%3 != 0 {
		return nil, fmt.Errorf("id mapping %q: want DISK:SHOWN:LEN triples", s)
	}
	var maps []fs.IDMap
	for i := 0; i < len(fields); i += 3 {
		var n [3]uint32
		for j := range n {
			v, err := strconv.ParseUint(fields[i+j], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id mapping %q: %q is not a number", s, fields[i+j])
			}
			n[j] = uint32(v)
		}
		if n[2] == 0 {
			return nil, fmt.Errorf("id mapping %q: a range of length 0", s)
		}
		maps = append(maps, fs.IDMap{Outside: n[0], Inside: n[1], Len: n[2]})
	}
	return maps, nil
}

// onOff sets *flag from the value of KEY=on or KEY=off.
func onOff(item, key, value string, flag *bool) error {
	switch value {
	case "on", "off":
		*flag = value == "on"
		return nil
	}
	return fmt.Errorf("mount option %q: want %s=on or %s=off", item, key, key)
}
