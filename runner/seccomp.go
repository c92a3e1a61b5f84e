package runner

import (
	"fmt"
	"unsafe"

	bpfseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A container's command runs under a seccomp filter, docker's default
// profile unless --security-opt seccomp=unconfined or --privileged, or
// the profile of seccomp=FILE. moby's profiles package reads the profile
// (docker's JSON format, its rules for capabilities, architectures and
// kernel versions resolved as docker does); elastic's go-seccomp-bpf
// turns the result into a BPF program and loads it. Both are pure Go:
// the binary stays static, without libseccomp.
//
// What the BPF builder cannot express is refused with a clear error: a
// masked comparison other than "no bit of the mask" or "the one bit of
// the mask", and SCMP_ACT_NOTIFY. Rules for other architectures than
// the native one are left out: a 32-bit (or x32) program in the container
// gets EPERM (ENOSYS) for every system call, unlike docker.

// seccompProfile returns the filter the container's command runs under,
// nil for none.
func seccompProfile(s Security) (*specs.LinuxSeccomp, error) {
	if s.Privileged || s.Seccomp == seccompUnconfined {
		return nil, nil
	}
	// The profile's rules that depend on a capability follow the
	// container's capabilities.
	caps := capNameList(s.capabilities())
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}}}
	if s.Seccomp == "" {
		return mobyseccomp.GetDefaultProfile(spec)
	}
	p, err := mobyseccomp.LoadProfile(s.Seccomp, spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if _, err := seccompPolicy(p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return p, nil
}

// loadSeccomp installs the container's filter on the init, which then
// execs the command under it. The init still has CAP_SYS_ADMIN in its
// user namespace, so no_new_privs is not needed (it is set by
// --security-opt no-new-privileges alone, as docker).
func loadSeccomp(s Security) error {
	p, err := seccompProfile(s)
	if err != nil || p == nil {
		return err
	}
	policy, err := seccompPolicy(p)
	if err != nil {
		return err
	}
	insts, err := seccompProgram(policy)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("seccomp: load the filter: %w", e)
	}
	return nil
}

// nrReload is the argument index whose low word the builder's LdLo reads
// at offset 0 of seccomp_data, the system call's number (16 + 8×index
// wraps to 0; little-endian machines).
const nrReload = ^uint32(1)

// seccompProgram assembles policy as the builder's Policy.Assemble does
// (the architecture checked first, x32 refused, the default action
// last), but with each system call a block of its own that loads the
// call's number again after comparing arguments: the builder's own
// assembly compares the next calls' numbers with the argument it loaded
// last, so a conditional rule (docker's for socket, clone, personality)
// hides every rule after it.
func seccompProgram(policy *bpfseccomp.Policy) ([]bpf.Instruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	prog := bpfseccomp.NewProgram()
	for _, g := range policy.Syscalls {
		calls := make([]bpfseccomp.SyscallWithConditions, 0, len(g.Names)+len(g.NamesWithCondtions))
		for _, n := range g.Names {
			calls = append(calls, bpfseccomp.SyscallWithConditions{Num: uint32(info.SyscallNames[n] | info.SeccompMask)})
		}
		for _, n := range g.NamesWithCondtions {
			calls = append(calls, bpfseccomp.SyscallWithConditions{Num: uint32(info.SyscallNames[n.Name] | info.SeccompMask),
				Conditions: []bpfseccomp.ArgumentConditions{n.Conditions}})
		}
		for _, call := range calls {
			match, next := prog.NewLabel(), prog.NewLabel()
			call.Assemble(&prog, false, match, next)
			prog.SetLabel(match)
			prog.Ret(g.Action)
			prog.SetLabel(next)
			if len(call.Conditions) > 0 {
				prog.LdLo(nrReload)
			}
		}
	}
	prog.Ret(policy.DefaultAction)
	body, err := prog.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def := uint32(policy.DefaultAction)
	if policy.DefaultAction == bpfseccomp.ActionErrno {
		def |= uint32(unix.EPERM)
	}
	out := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: def},
		bpf.LoadAbsolute{Off: 0, Size: 4}, // nr
	}
	if info.ID == arch.X86_64.ID {
		out = append(out,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(arch.X32.SeccompMask), SkipFalse: 1},
			bpf.RetConstant{Val: uint32(bpfseccomp.ActionErrno) | uint32(unix.ENOSYS)})
	}
	return append(out, body...), nil
}

// seccompPolicy turns an OCI seccomp section into the BPF builder's
// policy: one group of system calls per rule, in the profile's order.
// System calls this architecture lacks are left out.
func seccompPolicy(p *specs.LinuxSeccomp) (*bpfseccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	def, err := seccompAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	// The builder takes only plain actions as the default; its errno is
	// EPERM.
	switch def &^ 0xffff {
	case bpfseccomp.ActionErrno, bpfseccomp.ActionTrace:
		if def&0xffff != bpfseccomp.Action(unix.EPERM) {
			return nil, fmt.Errorf("a default action that returns errno %d is not supported (only EPERM)", def&0xffff)
		}
		def &^= 0xffff
	}
	policy := &bpfseccomp.Policy{DefaultAction: def}
	for _, rule := range p.Syscalls {
		action, err := seccompAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if rule.ErrnoRet == nil && rule.Action == specs.ActErrno && p.DefaultErrnoRet != nil {
			action, _ = seccompAction(rule.Action, p.DefaultErrnoRet)
		}
		var conds bpfseccomp.ArgumentConditions
		for _, a := range rule.Args {
			c, err := seccompCondition(a)
			if err != nil {
				return nil, fmt.Errorf("rule for %v: %w", rule.Names, err)
			}
			conds = append(conds, c)
		}
		group := bpfseccomp.SyscallGroup{Action: action}
		seen := map[string]bool{}
		for _, name := range rule.Names {
			if _, ok := info.SyscallNames[name]; !ok || seen[name] {
				continue
			}
			seen[name] = true
			if len(conds) == 0 {
				group.Names = append(group.Names, name)
			} else {
				group.NamesWithCondtions = append(group.NamesWithCondtions, bpfseccomp.NameWithConditions{Name: name, Conditions: conds})
			}
		}
		if len(seen) > 0 {
			policy.Syscalls = append(policy.Syscalls, group)
		}
	}
	if len(policy.Syscalls) == 0 {
		// The builder wants at least one group; this one changes nothing.
		policy.Syscalls = []bpfseccomp.SyscallGroup{{Names: []string{"exit_group"}, Action: def}}
	}
	return policy, nil
}

// seccompAction is an OCI action as the filter's return value.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (bpfseccomp.Action, error) {
	errno := bpfseccomp.Action(unix.EPERM)
	if errnoRet != nil {
		errno = bpfseccomp.Action(*errnoRet)
	}
	switch a {
	case specs.ActAllow:
		return bpfseccomp.ActionAllow, nil
	case specs.ActErrno:
		return bpfseccomp.ActionErrno | errno, nil
	case specs.ActTrace:
		return bpfseccomp.ActionTrace | errno, nil
	case specs.ActKill, specs.ActKillThread:
		return bpfseccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return bpfseccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return bpfseccomp.ActionTrap, nil
	case specs.ActLog:
		return bpfseccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("seccomp action %s is not supported", a)
}

// seccompOps are the OCI comparisons the builder has as they are.
var seccompOps = map[specs.LinuxSeccompOperator]bpfseccomp.Operation{
	specs.OpEqualTo: bpfseccomp.Equal, specs.OpNotEqual: bpfseccomp.NotEqual,
	specs.OpGreaterThan: bpfseccomp.GreaterThan, specs.OpGreaterEqual: bpfseccomp.GreaterOrEqual,
	specs.OpLessThan: bpfseccomp.LessThan, specs.OpLessEqual: bpfseccomp.LessOrEqual,
}

// seccompCondition is an OCI argument comparison in the builder's terms.
func seccompCondition(a specs.LinuxSeccompArg) (bpfseccomp.Condition, error) {
	c := bpfseccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	if op, ok := seccompOps[a.Op]; ok {
		c.Operation = op
		return c, nil
	}
	if a.Op != specs.OpMaskedEqual {
		return c, fmt.Errorf("comparison %s is not supported", a.Op)
	}
	// (arg & Value) == ValueTwo
	switch {
	case a.ValueTwo == 0:
		c.Operation = bpfseccomp.BitsNotSet
	case a.ValueTwo == a.Value && a.Value&(a.Value-1) == 0:
		c.Operation = bpfseccomp.BitsSet
	default:
		return c, fmt.Errorf("SCMP_CMP_MASKED_EQ %#x == %#x is not supported", a.Value, a.ValueTwo)
	}
	return c, nil
}
