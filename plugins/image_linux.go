package plugins

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// imageFD is where a child finds the image: its first extra file.
const imageFD = 3

// copyImage copies the binary into a sealed memfd: no process, the node
// included, can change its bytes after the hash. Where the kernel refuses
// an executable memfd (vm.memfd_noexec), a private file copy does instead.
func copyImage(role string, src *os.File) (*image, error) {
	fd, err := unix.MemfdCreate("avnode-"+role, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate("avnode-"+role, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return copyImageToFile(role, src)
	}
	f := os.NewFile(uintptr(fd), "avnode-"+role)
	sum, err := copyThroughHash(f, src)
	if err == nil {
		err = sealImage(f)
	}
	if errors.Is(err, unix.EBUSY) {
		// The kernel still holds the pages it just wrote after the waits
		// seal allows it; a busy machine does that. The private file copy
		// is as safe, so the role starts all the same.
		f.Close()
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return copyImageToFile(role, src)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &image{sum: sum, file: f, exec: "/proc/self/fd/3"}, nil
}

// sealImage is seal; a unit test makes it report a busy kernel.
var sealImage = seal

// seal forbids any change to f's bytes. Adding the write seal fails with
// EBUSY while the kernel holds a transient reference to a page (its
// per-CPU page lists, writeback); it waits for those only briefly, so a
// loaded machine gets a few more tries.
func seal(f *os.File) error {
	for try := 1; ; try++ {
		_, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
		if !errors.Is(err, unix.EBUSY) || try == 5 {
			return err
		}
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
	}
}

// passImage hands the image to the child as its descriptor imageFD.
func passImage(cmd *exec.Cmd, img *image) {
	if img.exec == "/proc/self/fd/3" {
		cmd.ExtraFiles = append([]*os.File{img.file}, cmd.ExtraFiles...)
	}
}
