package runner

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// execUser is the user a container's command runs as.
type execUser struct {
	spec string
	user.ExecUser
}

// lookupUser resolves a user spec (name, uid, name:group, uid:gid, empty
// for root) against the container's /etc/passwd and /etc/group, as Docker
// does: numeric ids need no entry, names do.
func lookupUser(spec string) (execUser, error) {
	defaults := user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	u, err := user.GetExecUserPath(spec, &defaults, "/etc/passwd", "/etc/group")
	if err != nil {
		if spec == "" || spec == "root" || spec == "0" {
			return execUser{spec: "root", ExecUser: defaults}, nil
		}
		return execUser{}, fmt.Errorf("unable to find user %s: %s", spec, userError(err))
	}
	if err := checkIDs(u); err != nil {
		return execUser{}, fmt.Errorf("unable to find user %s: %w", spec, err)
	}
	if spec == "" {
		spec = "root"
	}
	return execUser{spec: spec, ExecUser: *u}, nil
}

// maxID is the largest uid or gid: the kernel's are 32 bits and -1 means
// "unchanged".
const maxID = 1<<32 - 2

// checkIDs refuses ids of the image's passwd or group that do not fit:
// setresuid(2) would truncate them (2^55 to 0, root). Numeric ids of a
// user spec are checked by moby/sys/user already.
func checkIDs(u *user.ExecUser) error {
	for _, id := range append([]int{u.Uid, u.Gid}, u.Sgids...) {
		if id < 0 || id > maxID {
			return fmt.Errorf("id %d: ids go from 0 to %d", id, maxID)
		}
	}
	return nil
}

// userError shortens the library's errors to what the user needs.
func userError(err error) string {
	msg := err.Error()
	if errors.Is(err, io.EOF) || strings.Contains(msg, "no matching entries") {
		return "no matching entries in passwd file"
	}
	return msg
}

// become sets the process's groups, gid and uid. In a user namespace that
// maps only the caller, ids other than 0 cannot be taken: say so.
func (u execUser) become(rootless bool) error {
	// setgroups(2) is denied in a user namespace mapped without
	// newgidmap (setgroups=deny): there the process keeps no groups.
	if !rootless {
		if err := unix.Setgroups(u.Sgids); err != nil {
			return fmt.Errorf("set groups of user %s: %w", u.spec, err)
		}
	}
	if err := unix.Setresgid(u.Gid, u.Gid, u.Gid); err != nil {
		return u.unmapped("group", u.Gid, rootless, err)
	}
	if err := unix.Setresuid(u.Uid, u.Uid, u.Uid); err != nil {
		return u.unmapped("user", u.Uid, rootless, err)
	}
	return nil
}

func (u execUser) unmapped(kind string, id int, rootless bool, err error) error {
	if rootless && errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("user %s: %s id %d is not mapped in this rootless container (only root is; see 'unionfuse help run')", u.spec, kind, id)
	}
	return fmt.Errorf("user %s: set %s id %d: %w", u.spec, kind, id, err)
}
