// Package owneronly checks that the files holding secrets (database files, keys,
// tokens, PINs) and the directories holding them give no permission to group or
// others, and says in one line how to fix one that does. It changes no mode
// itself: which files hold secrets is its callers' knowledge.
package owneronly

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Exposed is a file or directory whose mode gives group or others a permission.
type Exposed struct {
	Path string
	Mode fs.FileMode // permission bits
	Dir  bool
}

// Error lists the exposed paths; its text names them and the chmod that fixes them.
type Error struct {
	Exposed []Exposed
}

func (e *Error) Error() string {
	var named, dirs, files []string
	for _, x := range e.Exposed {
		named = append(named, fmt.Sprintf("%s (mode %04o)", x.Path, x.Mode))
		if x.Dir {
			dirs = append(dirs, x.Path)
		} else {
			files = append(files, x.Path)
		}
	}
	var fix []string
	if len(dirs) > 0 {
		fix = append(fix, "chmod 700 "+strings.Join(dirs, " "))
	}
	if len(files) > 0 {
		fix = append(fix, "chmod 600 "+strings.Join(files, " "))
	}
	if len(e.Exposed) == 1 {
		x := e.Exposed[0]
		return fmt.Sprintf("%s is %s by group or others (mode %04o); fix with: %s", x.Path, access(x.Mode), x.Mode, fix[0])
	}
	return fmt.Sprintf("%s are open to group or others; fix with: %s", strings.Join(named, ", "), strings.Join(fix, " && "))
}

// access says what group or others may do.
func access(m fs.FileMode) string {
	switch {
	case m&0o044 != 0:
		return "readable"
	case m&0o022 != 0:
		return "writable"
	default:
		return "searchable"
	}
}

// Check returns an *Error naming each of paths that gives group or others any
// permission; a path that does not exist is skipped. Symbolic links are followed:
// what matters is the mode of what is read.
func Check(paths ...string) error {
	var e Error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			e.Exposed = append(e.Exposed, Exposed{Path: p, Mode: perm, Dir: fi.IsDir()})
		}
	}
	if len(e.Exposed) > 0 {
		return &e
	}
	return nil
}
