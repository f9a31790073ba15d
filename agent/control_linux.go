package agent

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerOf reads the credentials the kernel recorded for the client when
// it connected (SO_PEERCRED): they cannot be forged by what the client
// sends.
func peerOf(c net.Conn) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, fmt.Errorf("agent: control socket: %T is not a unix connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("agent: control socket: peer credentials: %w", err)
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("agent: control socket: peer credentials: %w", err)
	}
	if cerr != nil {
		return peer{}, fmt.Errorf("agent: control socket: peer credentials (SO_PEERCRED): %w", cerr)
	}
	return peer{known: true, pid: cred.Pid, uid: cred.Uid, gid: cred.Gid}, nil
}

// agentIDs is the agent's own effective user and group.
func agentIDs() (uid, gid uint32) { return uint32(os.Geteuid()), uint32(os.Getegid()) }

// peerGroups reads the supplementary groups of process pid from
// /proc/PID/status ("Groups:"). SO_PEERCRED gives the connecting
// process's user and primary group only. The pid is only as good as the
// moment it is read: the "Uid:" line must still name uid, so that a
// client that exited and left its pid to another user's process is not
// judged by that process's groups.
func peerGroups(pid int32, uid uint32) ([]uint32, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("agent: control socket: peer has no pid in this namespace")
	}
	path := "/proc/" + strconv.Itoa(int(pid)) + "/status"
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent: control socket: %w", err)
	}
	defer f.Close()
	var (
		groups           []uint32
		sawUID, sawGroup bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "Uid":
			// real, effective, saved, filesystem: SO_PEERCRED has the
			// effective one.
			f := strings.Fields(v)
			if len(f) < 2 || f[1] != strconv.FormatUint(uint64(uid), 10) {
				return nil, fmt.Errorf("agent: control socket: %s: the peer's uid changed (pid reused?)", path)
			}
			sawUID = true
		case "Groups":
			sawGroup = true
			for _, g := range strings.Fields(v) {
				n, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("agent: control socket: %s: group %q: %w", path, g, err)
				}
				groups = append(groups, uint32(n))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("agent: control socket: %s: %w", path, err)
	}
	if !sawUID || !sawGroup {
		return nil, errors.New("agent: control socket: " + path + " has no Uid: or Groups: line")
	}
	return groups, nil
}

// listenUnix0660 binds a unix socket of mode 0660 whatever the process's
// umask. The bind runs on a thread of its own that unshares its file
// system attributes (CLONE_FS) and so gets a umask of its own (0117):
// the socket is created with its mode, with no moment at which another
// user could connect. Changing the process's umask would change it for
// every goroutine creating files meanwhile; a chmod after binding leaves
// such a moment; a socket's fchmod before bind does not reach the file
// on Linux; binding in a private directory and renaming needs a free
// block for the directory, which a full disk does not have. The thread
// is never unlocked, so it ends with the goroutine and its umask with
// it. Where unshare is refused (a seccomp filter), the socket is bound
// under the process's umask and then chmodded: the peer check still
// refuses anyone who connects in between.
func listenUnix0660(path string) (net.Listener, error) {
	type result struct {
		ln  *net.UnixListener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Unshare(unix.CLONE_FS) == nil {
			unix.Umask(0o117)
		} else {
			runtime.UnlockOSThread()
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		r.ln.Close()
		return nil, err
	}
	return r.ln, nil
}
