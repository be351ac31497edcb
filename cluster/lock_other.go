//go:build !unix

package cluster

import (
	"errors"
	"os"
)

// tryLock is not available here: download folders of killed workers are
// not detected.
func tryLock(*os.File) error { return errors.ErrUnsupported }
