package main

// command is one subcommand: its help and what runs it.
type command struct {
	name    string
	aliases []string // other names it answers to
	usage   string   // one line: the synopsis
	help    string   // the rest of `unionfuse help NAME`
	// host commands run where they are called, never in the rootless
	// user namespace: their mounts must be seen by the caller (login and
	// logout: the credentials file stays the caller's).
	host bool
	// own marks the commands docker has not (mount, umount, mount-image,
	// help, version): a bad command line exits 2, as mount(8) and
	// fuse-overlayfs. The others exit 125 (exitDockerUsage), as docker's
	// CLI for a bad flag.
	own bool
	// options returns the Options section of the help (built only when
	// help is printed: flag sets are not made at every start).
	options func() string
	// run runs the command (cmd is the command itself) with the arguments
	// after its name and returns the exit status.
	run func(cmd *command, args []string) int
}

// commands is the command table: every subcommand, in the order help
// shows them. Each is defined in a file of its own (mountCmd in
// mount.go, ...); adding a command is its file and one line here.
// The table is filled in by init rather than by an initializer because
// help, one of the commands, lists them all.
var commands []*command

func init() {
	commands = []*command{
		// Unions.
		mountCmd,
		umountCmd,
		// Registries.
		pullCmd,
		pushCmd,
		loginCmd,
		logoutCmd,
		// Images and the layer store.
		importCmd,
		loadCmd,
		saveCmd,
		imagesCmd,
		historyCmd,
		inspectCmd,
		tagCmd,
		rmiCmd,
		systemCmd,
		infoCmd,
		mountImageCmd,
		snapshotterCmd,
		imageGroupCmd,
		volumeCmd,
		// Building and running.
		buildCmd,
		runCmd,
		createCmd,
		attachCmd,
		renameCmd,
		psCmd,
		startCmd,
		stopCmd,
		restartCmd,
		killCmd,
		pauseCmd,
		unpauseCmd,
		rmCmd,
		logsCmd,
		execCmd,
		portCmd,
		networkCmd,
		waitCmd,
		updateCmd,
		statsCmd,
		topCmd,
		diffCmd,
		commitCmd,
		exportCmd,
		eventsCmd,
		cpCmd,
		containerGroupCmd,
		// This program.
		helpCmd,
		versionCmd,
	}
}

// lookup returns the subcommand called name, or nil.
func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}
