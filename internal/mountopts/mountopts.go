// Package mountopts parses the option strings of fuse-overlayfs and mount(8)
// (`-o lowerdir=a:b,upperdir=u,workdir=w,nodev`) into the layers and flags
// of one union.
//
// The syntax follows the kernel's overlayfs: options are separated by
// commas, layers in lowerdir= by colons, and a backslash escapes the next
// character, so `\:` and `\,` are part of a path and `\\` is a backslash.
// Empty items between commas are ignored. Several option strings (several
// -o flags) accumulate; for an option given twice the last one wins.
package mountopts

import (
	"fmt"
	"slices"
	"strings"

	"github.com/unionfuse/unionfuse/fs"
)

// Options is what an option string asks for.
type Options struct {
	// Config holds what the options set of the union's fs.Config: the
	// layers (lowerdir=, upperdir=, workdir=, unescaped; no upper and
	// work for a read-only union), userxattr, the kernel's redirect_dir=
	// and index=, unionfuse's passthrough= and fuse-overlayfs's options
	// (overlayfs.go). A new option of fs.Config is one line in a parser
	// here. FsName, Logger and MountOptions are not options: FsConfig
	// sets MountOptions from ReadOnly and Generic.
	fs.Config
	// ReadOnly is set by "ro" (and cleared by "rw").
	ReadOnly bool
	// Generic holds the generic mount flags given (dev, nodev, suid,
	// nosuid, exec, noexec, atime, noatime), each pair at most once: the
	// last of "dev" and "nodev" wins. A flag not given keeps the mount's
	// default (nodev and nosuid for FUSE mounts).
	Generic []string
	// Server is the root of the union server to serve the union
	// (server=DIR, or "/" for a bare server): one process serves every
	// union under DIR of this user and namespaces, instead of a daemon
	// per union (internal/unionserver). "" for a daemon of its own.
	Server string
}

// ignored are mount(8) and fstab keywords that concern mount(8) itself,
// not the filesystem; helpers are expected to accept and ignore them.
var ignored = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "user": true,
	"nouser": true, "users": true, "nofail": true, "_netdev": true,
}

// Parse parses one or more option strings (the arguments of repeated -o
// flags) in order. An unknown option, a layer option without a value, a
// flag with a value, an empty layer path, or an upperdir without a workdir
// (or the reverse) is an error naming the option.
func Parse(optStrings ...string) (*Options, error) {
	o := &Options{}
	sawLowerdir := false
	for _, s := range optStrings {
		for _, item := range split(s, ',') {
			if item == "" {
				continue
			}
			switch key, _, _ := cut(item); key {
			case "lowerdir":
				sawLowerdir = true
			case "lowerdir+", "datadir+":
				if sawLowerdir {
					return nil, fmt.Errorf("mount option %q: lowerdir+ and datadir+ cannot follow lowerdir", item)
				}
			}
			if err := o.apply(item); err != nil {
				return nil, err
			}
		}
	}
	if o.Upper != "" && o.Work == "" {
		return nil, fmt.Errorf("mount option upperdir=%s needs a workdir= as well", o.Upper)
	}
	if o.Work != "" && o.Upper == "" {
		return nil, fmt.Errorf("mount option workdir=%s needs an upperdir= as well", o.Work)
	}
	return o, nil
}

// apply records one option (still escaped).
func (o *Options) apply(item string) error {
	key, value, hasValue := cut(item)
	switch key {
	case "lowerdir", "upperdir", "workdir", "lowerdir+", "datadir+":
		if !hasValue || value == "" {
			return fmt.Errorf("mount option %q needs a value (%s=PATH)", item, key)
		}
		return o.setDir(item, key, value)
	}
	if ignored[key] || strings.HasPrefix(key, "x-") || key == "comment" {
		return nil
	}
	if key == "server" {
		o.Server = "/"
		if hasValue {
			if o.Server = unescape(value); o.Server == "" {
				return fmt.Errorf("mount option %q needs a directory (server=DIR), or none (server)", item)
			}
		}
		return nil
	}
	if handled, err := o.applyFuseOverlayfs(item, key, value, hasValue); handled {
		return err
	}
	if !flagNames[key] {
		return fmt.Errorf("unknown mount option %q", item)
	}
	if hasValue {
		return fmt.Errorf("mount option %q takes no value", item)
	}
	switch key {
	case "ro", "rw":
		o.ReadOnly = key == "ro"
	case "userxattr":
		o.UserXattr = true
	default:
		base := strings.TrimPrefix(key, "no")
		o.Generic = slices.DeleteFunc(o.Generic, func(g string) bool {
			return g == base || g == "no"+base
		})
		o.Generic = append(o.Generic, key)
	}
	return nil
}

// flagNames lists the options that take no value.
var flagNames = map[string]bool{
	"ro": true, "rw": true, "userxattr": true,
	"dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "atime": true, "noatime": true,
}

// setDir records lowerdir=, upperdir= or workdir=.
func (o *Options) setDir(item, key, value string) error {
	switch key {
	case "lowerdir":
		lowers, data, err := SplitLowerdir(value)
		if err != nil {
			return fmt.Errorf("mount option %q: %w", item, err)
		}
		o.Lowers, o.DataLowers = lowers, data
	case "lowerdir+", "datadir+":
		// The new mount API's: one layer each, appended.
		switch {
		case key == "lowerdir+" && len(o.DataLowers) > 0:
			return fmt.Errorf("mount option %q: regular lower layers cannot follow data layers", item)
		case key == "lowerdir+":
			o.Lowers = append(o.Lowers, unescape(value))
		default:
			o.DataLowers = append(o.DataLowers, unescape(value))
		}
	case "upperdir":
		o.Upper = unescape(value)
	case "workdir":
		o.Work = unescape(value)
	}
	return nil
}

// FsConfig returns the fs.Config for these options. A union without an
// upper layer is mounted "ro", as the kernel does. A read-only union with
// an upper layer (`ro` with upperdir=) shows the upper directory as its top
// layer and never writes to it; the work directory is not used then.
func (o *Options) FsConfig() fs.Config {
	cfg := o.Config
	cfg.Lowers = append([]string(nil), o.Lowers...)
	cfg.DataLowers = append([]string(nil), o.DataLowers...)
	if o.ReadOnly && o.Upper != "" {
		cfg.Lowers = append([]string{o.Upper}, cfg.Lowers...)
		cfg.Upper, cfg.Work = "", ""
	}
	ro := *o
	ro.ReadOnly = o.ReadOnly || o.Upper == ""
	cfg.MountOptions = ro.Flags()
	return cfg
}

// Flags returns the generic mount flags to pass to the kernel: "ro" when
// read-only, then Generic.
func (o *Options) Flags() []string {
	var flags []string
	if o.ReadOnly {
		flags = append(flags, "ro")
	}
	return append(flags, o.Generic...)
}

// SplitLowerdir splits the value of lowerdir= (and the LOWER argument of
// `unionfuse mount`) as the kernel does, with its escapes: layers
// separated by ':', and after a '::' data-only layers ("l1:l2::d1::d2",
// see fs.Config.DataLowers), which regular layers cannot follow. An empty
// layer, three colons in a row or a trailing colon is an error.
func SplitLowerdir(s string) (lowers, data []string, err error) {
	parts := split(s, ':')
	for i := 0; i < len(parts); i++ {
		isData := false
		if parts[i] == "" && i > 0 && i < len(parts)-1 {
			i++ // "::": a data-only layer follows
			isData = true
		}
		switch {
		case parts[i] == "" && i == len(parts)-1 && i > 0:
			return nil, nil, fmt.Errorf("empty layer path (an unescaped trailing colon)")
		case parts[i] == "" && isData:
			return nil, nil, fmt.Errorf("only single ':' or double '::' sequences of unescaped colons allowed")
		case parts[i] == "":
			return nil, nil, fmt.Errorf("empty layer path")
		case isData:
			data = append(data, unescape(parts[i]))
		case len(data) > 0:
			return nil, nil, fmt.Errorf("regular lower layers cannot follow data lower layers")
		default:
			lowers = append(lowers, unescape(parts[i]))
		}
	}
	return lowers, data, nil
}

// split cuts s at every sep that is not escaped by a backslash, keeping
// the escapes in the pieces. Between options (sep ','), a double-quoted
// run is kept whole: context="a,b" is one option.
func split(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			if sep == ',' {
				if j := strings.IndexByte(s[i+1:], '"'); j >= 0 {
					i += j + 1
				}
			}
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// cut splits an item at its first unescaped '='.
func cut(item string) (key, value string, ok bool) {
	for i := 0; i < len(item); i++ {
		switch item[i] {
		case '\\':
			i++
		case '=':
			return item[:i], item[i+1:], true
		}
	}
	return item, "", false
}

// unescape removes the backslashes that escape the next character.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
