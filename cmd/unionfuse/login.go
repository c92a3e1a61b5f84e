package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfuse/unionfuse/registry"
	"golang.org/x/term"
)

var loginCmd = &command{
	name:  "login",
	usage: "unionfuse login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]",
	help: `Log in to a registry (Docker Hub without SERVER), as docker login does:
the credentials are checked with the registry, then kept in docker's
~/.docker/config.json ($DOCKER_CONFIG; --authfile for another file), which
docker, podman, skopeo and unionfuse all read. Without -p or
--password-stdin, the user name and password are asked for on the
terminal. The password is never printed. See docs/registry.md.`,
	host:    true,
	options: optionsOf(loginFlags),
	run:     runLogin,
}

var logoutCmd = &command{
	name:  "logout",
	usage: "unionfuse logout [SERVER]",
	help: `Remove the credentials of a registry (Docker Hub without SERVER) from
docker's config.json (or --authfile).`,
	host:    true,
	options: optionsOf(logoutFlags),
	run:     runLogout,
}

type loginArgs struct {
	registryFlags
	user, password string
	passwordStdin  bool
}

func loginFlags() (*pflag.FlagSet, *loginArgs) {
	a := &loginArgs{}
	fset := pflag.NewFlagSet("login", pflag.ContinueOnError)
	a.registryFlags.add(fset)
	fset.StringVarP(&a.user, "username", "u", "", "the `USER` name")
	fset.StringVarP(&a.password, "password", "p", "", "the `PASSWORD` (insecure: use --password-stdin)")
	fset.BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from standard input")
	return fset, a
}

func runLogin(cmd *command, args []string) int {
	fset, a := loginFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	reg, code, ok := serverArg(cmd, pos)
	if !ok {
		return code
	}
	switch {
	case a.password != "" && a.passwordStdin:
		return usageError(cmd, "--password and --password-stdin are mutually exclusive")
	case a.passwordStdin && a.user == "":
		return usageError(cmd, "must provide --username with --password-stdin")
	case a.password != "":
		fmt.Fprintln(os.Stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	case a.passwordStdin:
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return fail(err)
		}
		a.password = strings.TrimRight(string(b), "\r\n")
	default:
		if err := askCredentials(a); err != nil {
			return fail(err)
		}
	}
	if a.user == "" || a.password == "" {
		return fail(errors.New("login: a user name and a password are needed"))
	}
	ro, err := a.registryFlags.options()
	if err != nil {
		return fail(err)
	}
	ctx, stop := interruptible()
	defer stop()
	path, err := registry.Login(ctx, reg, a.user, a.password, ro)
	if err != nil {
		return failRegistry(ctx, err)
	}
	fmt.Fprintf(os.Stderr, "WARNING! Your password will be stored unencrypted in %s.\n", path)
	fmt.Println("Login Succeeded")
	return exitOK
}

// askCredentials asks for what -u and -p did not give on the terminal,
// the password without echo.
func askCredentials(a *loginArgs) error {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("login: cannot ask for the password: standard input is not a terminal (use --password-stdin)")
	}
	if a.user == "" {
		fmt.Print("Username: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		a.user = strings.TrimSpace(line)
	}
	fmt.Print("Password: ")
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Println()
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	a.password = string(b)
	return nil
}

func logoutFlags() (*pflag.FlagSet, *registryFlags) {
	a := &registryFlags{}
	fset := pflag.NewFlagSet("logout", pflag.ContinueOnError)
	fset.StringVar(&a.authFile, "authfile", "", "remove the credentials from `FILE` (default: docker's config.json)")
	return fset, a
}

func runLogout(cmd *command, args []string) int {
	fset, a := logoutFlags()
	pos, code, ok := parseFlags(cmd, fset, args)
	if !ok {
		return code
	}
	reg, code, ok := serverArg(cmd, pos)
	if !ok {
		return code
	}
	found, err := registry.Logout(reg, registry.Options{AuthFile: a.authFile})
	if err != nil {
		return fail(err)
	}
	if !found {
		fmt.Printf("Not logged in to %s\n", reg)
		return exitOK
	}
	fmt.Printf("Removing login credentials for %s\n", reg)
	return exitOK
}

// serverArg returns the registry of login's or logout's [SERVER]
// (Docker Hub without one).
func serverArg(c *command, pos []string) (string, int, bool) {
	if len(pos) > 1 {
		return "", usageError(c, "want at most one SERVER, got %d arguments", len(pos)), false
	}
	server := ""
	if len(pos) == 1 {
		server = pos[0]
	}
	reg, err := registry.ParseRegistry(server)
	if err != nil {
		return "", usageError(c, "%v", err), false
	}
	return reg, 0, true
}
