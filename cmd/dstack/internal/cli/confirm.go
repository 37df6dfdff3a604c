package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// askYesNo asks a dstack-style question ("Stop the run task.train?") on a
// terminal and reports whether the answer was y or yes. Without a
// terminal it does not guess: the error says to give -y, naming the
// command (what).
func askYesNo(s Streams, what, question string) (bool, error) {
	f, ok := s.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, fmt.Errorf("%s needs confirmation, but there is no terminal to ask on: run it with -y to go ahead without asking", what)
	}
	fmt.Fprintf(s.Stdout, "%s [y/n]: ", question)
	line, err := bufio.NewReader(s.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
