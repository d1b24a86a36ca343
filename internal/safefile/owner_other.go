//go:build !unix

package safefile

import (
	"errors"
	"io/fs"
	"os"
)

// NonBlock is 0 here.
const NonBlock = 0

// NoFollow is 0 here: symbolic links are checked with Lstat only.
const NoFollow = 0

// CheckDir checks that dir is a directory; ownership and modes are not
// checked on this system.
func CheckDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return &fs.PathError{Op: "open", Path: dir, Err: errors.New("not a directory")}
	}
	return nil
}

// Private does nothing on this system.
func Private(*os.File) (fs.FileMode, error) { return 0, nil }
