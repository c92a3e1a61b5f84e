package runner

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Docker's default profile, and one in its JSON format, assemble into a
// BPF program.
func TestSeccompPolicyAssembles(t *testing.T) {
	for _, s := range []Security{
		{},
		{CapAdd: []string{"SYS_ADMIN"}},
		{Seccomp: `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}`},
	} {
		p, err := seccompProfile(s)
		if err != nil || p == nil {
			t.Fatalf("profile of %+v: %v", s, err)
		}
		policy, err := seccompPolicy(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := policy.Assemble(); err != nil {
			t.Errorf("assemble %+v: %v", s, err)
		}
	}
	if p, err := seccompProfile(Security{Privileged: true}); p != nil || err != nil {
		t.Errorf("privileged: profile %v, %v; want none", p, err)
	}
	bad := Security{Seccomp: `{"defaultAction": "SCMP_ACT_NOTIFY"}`}
	if err := bad.check(); err == nil {
		t.Error("SCMP_ACT_NOTIFY accepted")
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		s    Security
		want []uintptr
	}{
		{Security{CapDrop: []string{"ALL"}}, nil},
		{Security{CapDrop: []string{"all"}, CapAdd: []string{"cap_chown", "KILL"}}, []uintptr{unix.CAP_CHOWN, unix.CAP_KILL}},
		{Security{CapDrop: []string{"CHOWN"}}, slices.DeleteFunc(slices.Clone(defaultCaps), func(c uintptr) bool { return c == unix.CAP_CHOWN })},
		{Security{CapAdd: []string{"SYS_ADMIN"}}, append(slices.Clone(defaultCaps), unix.CAP_SYS_ADMIN)},
	} {
		if got := tc.s.capabilities(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.s, got, tc.want)
		}
	}
	if n := len((Security{Privileged: true}).capabilities()); n != unix.CAP_LAST_CAP+1 {
		t.Errorf("privileged: %d capabilities", n)
	}
	if err := (Security{CapAdd: []string{"NOSUCH"}}).check(); err == nil {
		t.Error("unknown capability accepted")
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]Device{
		"/dev/fuse":           {"/dev/fuse", "/dev/fuse", "rwm"},
		"/dev/fuse:r":         {"/dev/fuse", "/dev/fuse", "r"},
		"/dev/fuse:/dev/f":    {"/dev/fuse", "/dev/f", "rwm"},
		"/dev/fuse:/dev/f:rw": {"/dev/fuse", "/dev/f", "rw"},
	} {
		if got, err := ParseDevice(in); err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"fuse", "/dev/fuse:/dev/f:x", "/a:/b:r:w"} {
		if _, err := ParseDevice(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestCgroupResources(t *testing.T) {
	r := Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 10}.cgroupResources()
	if r.CpuQuota != 50000 || r.CpuPeriod != 100000 || *r.PidsLimit != 10 || r.Memory != 64<<20 {
		t.Errorf("cgroup resources: %+v", r)
	}
	if err := (Resources{Memory: 1 << 20}).check(); err == nil {
		t.Error("1 MiB of memory accepted")
	}
	up := Resources{Memory: 64 << 20, PidsLimit: 5}.Update(Resources{Memory: 128 << 20})
	if up.Memory != 128<<20 || up.PidsLimit != 5 {
		t.Errorf("update: %+v", up)
	}
}

// The assembled default profile, run in a BPF interpreter on seccomp
// data: rules after a conditional one still match.
func TestSeccompProgramDecides(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	p, _ := seccompProfile(Security{})
	policy, err := seccompPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := seccompProgram(policy)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	allow := uint32(0x7fff0000)
	eperm := uint32(0x00050000 | unix.EPERM)
	for _, tc := range []struct {
		name string
		arg0 uint64
		want uint32
	}{
		{"socket", unix.AF_INET, allow}, {"socket", unix.AF_NETLINK, allow}, {"socket", unix.AF_VSOCK, eperm},
		{"getpid", 0, allow}, {"write", 1, allow}, {"keyctl", 0, eperm}, {"unshare", 0, eperm}, {"mount", 0, eperm},
	} {
		// The interpreter loads words in network order; the program reads
		// an argument's low word first (little-endian seccomp data).
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], uint32(info.SyscallNames[tc.name]))
		binary.BigEndian.PutUint32(data[4:], uint32(info.ID))
		binary.BigEndian.PutUint32(data[16:], uint32(tc.arg0))
		binary.BigEndian.PutUint32(data[20:], uint32(tc.arg0>>32))
		got, err := vm.Run(data)
		if err != nil || uint32(got) != tc.want {
			t.Errorf("%s(%d): %#x, %v; want %#x", tc.name, tc.arg0, got, err, tc.want)
		}
	}
}
