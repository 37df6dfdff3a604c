package agent

import (
	"fmt"
	"os"
	"syscall"
)

// punchHole frees the disk blocks of f between the offsets from and to
// (rounded down to 4 KiB blocks) without changing f's size or the offsets
// of the bytes after them: reads of the hole return zeros. ext4, xfs,
// btrfs and tmpfs support it.
func punchHole(f *os.File, from, to int64) error {
	const (
		keepSize  = 0x01 // FALLOC_FL_KEEP_SIZE
		punchHole = 0x02 // FALLOC_FL_PUNCH_HOLE
		block     = 4096
	)
	from, to = from&^(block-1), to&^(block-1)
	if to <= from {
		return nil
	}
	if err := syscall.Fallocate(int(f.Fd()), keepSize|punchHole, from, to-from); err != nil {
		return fmt.Errorf("punch hole in %s: %w", f.Name(), err)
	}
	return nil
}
