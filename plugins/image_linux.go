package plugins

import (
	"errors"
	"os"
	"os/exec"

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
		_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &image{sum: sum, file: f, exec: "/proc/self/fd/3"}, nil
}

// passImage hands the image to the child as its descriptor imageFD.
func passImage(cmd *exec.Cmd, img *image) {
	if img.exec == "/proc/self/fd/3" {
		cmd.ExtraFiles = append([]*os.File{img.file}, cmd.ExtraFiles...)
	}
}
