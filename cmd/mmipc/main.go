// Command mmipc lists, inspects, dumps, copies and removes mmipc shared-memory regions and rings.
//
// Names are resolved like the library resolves them: in $MMIPC_DIR (default /dev/shm), or as a
// file-system path when they contain '/'. Run "mmipc help" for the commands and exit codes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mmipc/mmipc/mmipc"
)

// Exit codes, documented in the usage text.
const (
	exitOK    = 0 // success
	exitFail  = 1 // an operation failed (a name not found, a file that is not a region, ...)
	exitUsage = 2 // unknown command or flag, missing or extra argument
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// command is one subcommand: its usage text and the function that runs it with the arguments
// after its name.
type command struct {
	synopsis string // one line for the command list: the command, a tab, what it does
	usage    string // the whole help text
	run      func(c *cmdEnv, args []string) int
}

// commands is filled in init (not in its declaration) because help refers back to it.
var commands map[string]*command

// commandOrder is the order of the command list in the usage text.
var commandOrder = []string{"ls", "stat", "rm", "gc", "cat", "cp", "ring", "version", "help"}

func init() {
	commands = map[string]*command{
		"ls":      {lsSynopsis, lsUsage, runLs},
		"stat":    {statSynopsis, statUsage, runStat},
		"rm":      {rmSynopsis, rmUsage, runRm},
		"gc":      {gcSynopsis, gcUsage, runGc},
		"cat":     {catSynopsis, catUsage, runCat},
		"cp":      {cpSynopsis, cpUsage, runCp},
		"ring":    {ringSynopsis, ringUsage, runRing},
		"version": {"mmipc version\tprint the version", "usage: mmipc version\n\nPrints the version of mmipc (the library and this command).\n", runVersion},
		"help":    {"mmipc help [COMMAND]\tshow help for mmipc or a command", "usage: mmipc help [COMMAND]\n\nPrints the usage of mmipc, or of COMMAND, on standard output.\n", runHelp},
	}
}

// cmdEnv is what a subcommand writes to, and its name for messages ("ls", "ring stat").
type cmdEnv struct {
	name           string
	stdout, stderr io.Writer
}

// errorf reports a failure as "mmipc: <cmd>: <message>" on stderr.
func (c *cmdEnv) errorf(format string, a ...any) {
	fmt.Fprintf(c.stderr, "mmipc: %s: %s\n", c.name, fmt.Sprintf(format, a...))
}

// fail reports err and returns exitFail.
func (c *cmdEnv) fail(err error) int {
	c.errorf("%s", describe(err))
	return exitFail
}

// usageError reports a misuse and points at the command's help; it returns exitUsage.
func (c *cmdEnv) usageError(format string, a ...any) int {
	c.errorf(format, a...)
	fmt.Fprintf(c.stderr, "Run 'mmipc help %s' for usage.\n", c.name)
	return exitUsage
}

// describe is an error's message without the library's "mmipc " prefix, which the command's own
// "mmipc: <cmd>: " prefix replaces.
func describe(err error) string {
	var e *mmipc.Error
	if errors.As(err, &e) {
		return e.Describe()
	}
	return err.Error()
}

// run is the whole command: it returns the exit code instead of exiting, so that tests call it.
// Output that could not be written (a full disk, a closed pipe) fails the command, whatever it
// printed: a listing that silently went nowhere must not look like success.
func run(args []string, stdout, stderr io.Writer) int {
	out := &checkedWriter{w: stdout}
	name := "mmipc"
	if len(args) > 0 {
		if _, ok := commands[args[0]]; ok {
			name = args[0]
		}
	}
	code := dispatch(args, out, stderr)
	if out.err != nil && code == exitOK {
		fmt.Fprintf(stderr, "mmipc: %s: writing the output: %v\n", name, out.err)
		return exitFail
	}
	return code
}

// checkedWriter remembers the first error of its writes.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.err = err
	return n, err
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	top := &cmdEnv{name: "mmipc", stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	case "-version", "--version":
		return runVersion(top, nil)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "mmipc: unknown flag %q\nRun 'mmipc help' for usage.\n", args[0])
		} else {
			fmt.Fprintf(stderr, "mmipc: unknown command %q\nRun 'mmipc help' for usage.\n", args[0])
		}
		return exitUsage
	}
	return cmd.run(&cmdEnv{name: args[0], stdout: stdout, stderr: stderr}, args[1:])
}

// parse parses a subcommand's flags, which may come before, between or after its operands (as in
// "mmipc cat NAME --raw"); "--" ends the flags, for names that begin with '-'. It returns the
// operands, or an exit code when parsing ended the command: exitOK after printing the help for
// -h/--help, exitUsage after reporting a bad flag.
func (c *cmdEnv) parse(fs *flag.FlagSet, args []string, usage string) ([]string, int, bool) {
	fs.SetOutput(io.Discard) // errors are reported below, in the command's own format
	fs.Usage = func() {}
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(c.stdout, usage)
				return nil, exitOK, false
			}
			return nil, c.usageError("%v", err), false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, 0, true
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(operands, rest...), 0, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// newFlags makes a subcommand's flag set.
func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`usage: mmipc COMMAND [ARGS]

mmipc lists, inspects, dumps, copies and removes mmipc shared-memory regions and rings.

Commands:
`)
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, name := range commandOrder {
		fmt.Fprintf(tw, "  %s\n", commands[name].synopsis)
	}
	tw.Flush()
	b.WriteString(`
Names are looked up in $MMIPC_DIR (default /dev/shm), like the library does; a name containing
'/' is a file-system path. Put "--" before a name that begins with '-'.
Run 'mmipc help COMMAND' (or 'mmipc COMMAND --help') for a command's details.

Exit status:
  0  success
  1  an operation failed (a name not found, a file that is not a region, an I/O error, ...)
  2  usage error (unknown command or flag, missing or extra argument)
`)
	return b.String()
}

func runVersion(c *cmdEnv, args []string) int {
	fl := newFlags("version")
	operands, code, ok := c.parse(fl, args, commands["version"].usage)
	if !ok {
		return code
	}
	if len(operands) > 0 {
		return c.usageError("unexpected argument %q", operands[0])
	}
	fmt.Fprintf(c.stdout, "mmipc %s (region protocol %d)\n", mmipc.Version, mmipc.ProtocolVersion)
	return exitOK
}

func runHelp(c *cmdEnv, args []string) int {
	fl := newFlags("help")
	operands, code, ok := c.parse(fl, args, commands["help"].usage)
	if !ok {
		return code
	}
	if len(operands) == 0 {
		fmt.Fprint(c.stdout, mainUsage())
		return exitOK
	}
	// "mmipc help ring stat" is the ring command's help, which covers its subcommands.
	cmd, found := commands[operands[0]]
	if !found || len(operands) > 2 || (len(operands) == 2 && (operands[0] != "ring" || operands[1] != "stat")) {
		c.errorf("no help for %q", strings.Join(operands, " "))
		fmt.Fprintln(c.stderr, "Run 'mmipc help' for the list of commands.")
		return exitUsage
	}
	fmt.Fprint(c.stdout, cmd.usage)
	return exitOK
}
