package ovlfmt

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// Prefixes of the overlay's private extended attributes.
const (
	TrustedPrefix = "trusted.overlay."
	UserPrefix    = "user.overlay."
)

// Names of the private attributes, relative to the prefix (the kernel's
// OVL_XATTR_*).
const (
	Opaque   = "opaque"
	Whiteout = "whiteout"
	Redirect = "redirect"
	Origin   = "origin"
	Impure   = "impure"
	Nlink    = "nlink"
	Upper    = "upper"
	Metacopy = "metacopy"
	// Probe is unionfuse's own: set on a short-lived file to learn
	// whether the namespace may be used.
	Probe = "probe"
	// escape marks a user's attribute stored under the private prefix.
	escape = "overlay."
)

// Values of the private attributes that are flags.
const (
	// Yes ("y") is the value of a flag that is set: opaque on an opaque
	// directory, whiteout on a whiteout, impure.
	Yes = "y"
	// HasXwhiteouts ("x") as the value of opaque marks a directory that
	// is not opaque but holds xattr whiteouts.
	HasXwhiteouts = "x"
)

// Xattrs holds the full names of the private attributes in one namespace.
type Xattrs struct {
	Namespace string // "trusted" or "user"
	Prefix    string // "trusted.overlay." or "user.overlay."
	Opaque    string
	Whiteout  string
	Redirect  string
	Origin    string
	Impure    string
	Nlink     string
	Upper     string
	Metacopy  string
	Probe     string
	escaped   string // Prefix + "overlay."
}

// Trusted and User are the two namespaces: the kernel's default and its
// -o userxattr.
var (
	Trusted = xattrsOf("trusted", TrustedPrefix)
	User    = xattrsOf("user", UserPrefix)
)

func xattrsOf(namespace, prefix string) *Xattrs {
	return &Xattrs{
		Namespace: namespace,
		Prefix:    prefix,
		Opaque:    prefix + Opaque,
		Whiteout:  prefix + Whiteout,
		Redirect:  prefix + Redirect,
		Origin:    prefix + Origin,
		Impure:    prefix + Impure,
		Nlink:     prefix + Nlink,
		Upper:     prefix + Upper,
		Metacopy:  prefix + Metacopy,
		Probe:     prefix + Probe,
		escaped:   prefix + escape,
	}
}

// For returns User when userxattr, else Trusted.
func For(userxattr bool) *Xattrs {
	if userxattr {
		return User
	}
	return Trusted
}

// IsPrivate reports whether the stored attribute name belongs to the
// overlay itself in this namespace (and so is hidden from users and not
// copied up): under the prefix and not escaped.
func (x *Xattrs) IsPrivate(stored string) bool {
	return strings.HasPrefix(stored, x.Prefix) && !strings.HasPrefix(stored, x.escaped)
}

// Escape maps a name used through the mount to the name stored in a
// layer: a name under the private prefix gets "overlay." after it.
func (x *Xattrs) Escape(name string) string {
	if rest, ok := strings.CutPrefix(name, x.Prefix); ok {
		return x.escaped + rest
	}
	return name
}

// Unescape maps a stored name to the name users see; ok is false for the
// overlay's own attributes.
func (x *Xattrs) Unescape(stored string) (name string, ok bool) {
	rest, private := strings.CutPrefix(stored, x.Prefix)
	if !private {
		return stored, true
	}
	if rest, ok = strings.CutPrefix(rest, escape); !ok {
		return "", false
	}
	return x.Prefix + rest, true
}

// IsPrivateXattr reports whether name is under the private prefix of
// either namespace, escaped or not: what an image layer may not carry and
// a packed layer leaves out.
func IsPrivateXattr(name string) bool {
	return strings.HasPrefix(name, TrustedPrefix) || strings.HasPrefix(name, UserPrefix)
}

// ProbeNamespace sets the probe attribute on the open file fd in the
// trusted namespace and, when that is not permitted (not root, or root in
// a user namespace), in the user namespace. It returns the namespace that
// took the attribute, or nil and the error of the trusted one. The caller
// removes the file.
func ProbeNamespace(fd int) (*Xattrs, error) {
	err := Trusted.SetProbe(fd)
	if err == nil {
		return Trusted, nil
	}
	if errors.Is(err, unix.EPERM) && User.SetProbe(fd) == nil {
		return User, nil
	}
	return nil, err
}

// SetProbe sets the probe attribute of the namespace on the open file fd.
func (x *Xattrs) SetProbe(fd int) error {
	return unix.Fsetxattr(fd, x.Probe, []byte(Yes), 0)
}
