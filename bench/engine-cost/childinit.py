import os, socket, subprocess, sys
# instructions (callgrind) of an engine process start: exec, linking, backend modules, until its
# channel ends (the new child loads the modules before its first frame)
for b in sys.argv[1:]:
    a, c = socket.socketpair()
    fd = c.fileno()
    p = subprocess.Popen(['valgrind', '--tool=callgrind', '--callgrind-out-file=/dev/null', b, '__engine', '3'],
                         pass_fds=(fd,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: os.dup2(fd, 3))
    c.close()
    a.shutdown(socket.SHUT_WR)
    out = p.communicate()[1]
    print(b, [l.split(':')[-1].strip() for l in out.splitlines() if 'Collected' in l])
