/*
 * berth-pause: the process that holds a pod sandbox's namespaces open for the test cluster
 * (test/cluster/cluster.sh builds it statically and makes it containerd's sandbox image, as the
 * cluster has no registry to pull the usual pause image from).
 *
 * It runs as PID 1 of the sandbox's PID namespace when the pod shares one, so it reaps every child
 * that gets re-parented to it; it exits 0 on SIGTERM or SIGINT (how the runtime stops a sandbox)
 * and otherwise sleeps in pause().  `berth-pause --version` prints its name and exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Only has to exist: with SIGCHLD's default disposition the signal is discarded and would not wake
 * the sleep below. The main loop does the reaping. */
static void on_child(int sig) { (void)sig; }

static void reap_all(void) {
  for (;;) {
    pid_t pid = waitpid(-1, NULL, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    break; /* 0: children left but none exited; -1/ECHILD: no children at all */
  }
}

static int install(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = (sig == SIGCHLD) ? SA_NOCLDSTOP : 0;
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
    puts("berth-pause 1");
    return 0;
  }
  if (install(SIGTERM, on_stop) || install(SIGINT, on_stop) || install(SIGCHLD, on_child)) {
    perror("berth-pause: sigaction");
    return 1;
  }
  /* Block the signals we handle except while sleeping, so none can slip in between the check of
   * stop_requested and the sleep (a lost wake-up would leave the sandbox running). */
  sigset_t handled, during_sleep;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &handled, &during_sleep) != 0) {
    perror("berth-pause: sigprocmask");
    return 1;
  }
  sigdelset(&during_sleep, SIGTERM);
  sigdelset(&during_sleep, SIGINT);
  sigdelset(&during_sleep, SIGCHLD);

  while (!stop_requested) {
    reap_all();
    if (stop_requested) break;
    sigsuspend(&during_sleep); /* pause() with the handled signals unblocked atomically */
  }
  reap_all();
  return 0;
}
