// Package reexec starts this binary again in a process role, and runs the
// role when the binary is started in one.
//
// Several processes of unionfuse are the unionfuse binary itself, started
// again as /proc/self/exe (or through nsenter(1)) to do one job. Each such
// role has a name (the constants below: the one list of them), and the
// package that defines the role registers its main function under that
// name in an init function. The command's main calls Run before anything
// else: when the process was started in a role, Run runs that role's main
// and main exits with its status. Two roles are run by small binaries
// beside the CLI when they are installed (Sibling): the daemon by
// unionfuse-fuse, a container's init by unionfuse-init.
//
//	role           package         what the process does
//	daemon         internal/daemon serves one union mount in the background
//	monitor        runner          runs a detached container, output to its log
//	init           runner          a container's first process: sets up its
//	                               root, then execs the container's command
//	userns         runner          holds the rootless user and mount namespaces
//	export         runner          tars a container's root from inside a chroot
//	socket-helper  runner          makes sockets in a container's network
//	                               namespace, for published ports
//	cp             runner          copies a container's files from inside a
//	                               chroot into its root (unionfuse cp)
//	union-server   internal/       serves the unions of one root for its
//	               unionserver     clients (the snapshotter, -o server=)
//	netns          network         holds the network namespace of a rootless
//	                               user's user-defined networks
//
// The role is chosen by the environment variable UNIONFUSE_ROLE, which
// Command sets and Run removes (the role's own children do not inherit
// it). An environment variable rather than argv[0] (as moby/sys/reexec
// does): a role started through nsenter(1) cannot choose its argv[0].
// What a role needs besides its name comes on descriptors it inherits, in
// arguments or in environment variables of its own.
package reexec
