import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The environment variable through which `dots launch` tells a role process who supervises it.
let launcherPIDVariable = "DOTS_LAUNCHER_PID"

/// Called first thing by every role process. When started by `dots launch` (DOTS_LAUNCHER_PID is set),
/// asks the kernel to send this process SIGTERM when the launcher dies — even by SIGKILL — so a child
/// never outlives its launcher; SIGTERM then takes the role's ordinary clean-shutdown path. Exits at once
/// if the launcher is already gone. A no-op when run by hand and on systems without PR_SET_PDEATHSIG.
func bindLifetimeToLauncher() {
    #if canImport(Glibc)
    guard let text = ProcessInfo.processInfo.environment[launcherPIDVariable] else { return }
    guard let launcher = pid_t(text) else {
        FileHandle.standardError.write(Data("\(launcherPIDVariable) must be a process id, is \"\(text)\".\n".utf8))
        exit(1)
    }
    // prctl is variadic, so Swift does not import it: call it through a fixed five-argument prototype
    // (the kernel's own). PR_SET_PDEATHSIG = 1 (linux/prctl.h, not in the Glibc module).
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    if let symbol = dlsym(dlopen(nil, RTLD_NOW), "prctl") {
        _ = unsafeBitCast(symbol, to: Prctl.self)(1, UInt(SIGTERM), 0, 0, 0)
    }
    // The launcher may have died between spawning us and the prctl above: then nobody would signal us.
    if getppid() != launcher {
        FileHandle.standardError.write(Data("""
            The launcher that started this process (pid \(launcher)) is gone; exiting \
            (unset \(launcherPIDVariable) to run a role by hand).\n
            """.utf8))
        exit(1)
    }
    #endif
}

/// How a child process ended.
enum ChildTermination: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let sig): "was killed by signal \(sig) (\(String(cString: strsignal(sig))))"
        }
    }
}

/// A role process started by the launcher: its own process group (so the terminal's Ctrl-C reaches only
/// the launcher, which then stops the children in order), default signal dispositions (the launcher
/// ignores SIGINT/SIGTERM, and ignored signals would otherwise be inherited), stdin from /dev/null, and
/// stdout and stderr appended to a log file.
///
/// Spawn from the main thread: PR_SET_PDEATHSIG fires when the *thread* that created the child exits,
/// and a worker thread may exit long before the launcher does.
struct ChildProcess {
    let pid: pid_t

    static func spawn(executable: String, arguments: [String], environment: [String: String],
                      logPath: String) throws -> ChildProcess {
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ChildProcessError("cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }

        #if canImport(Glibc)
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #else
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, log, 1)
        posix_spawn_file_actions_adddup2(&actions, log, 2)

        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw ChildProcessError("cannot start \(executable): \(String(cString: strerror(rc)))") }
        liveChildren.insert(pid)
        return ChildProcess(pid: pid)
    }

    /// Signals the child's whole process group. Only call before `poll` has returned a termination: until
    /// then the pid (a zombie at worst) cannot have been reused.
    func signal(_ sig: Int32) { kill(-pid, sig) }

    /// The termination, once; nil while it runs.
    func poll() -> ChildTermination? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        liveChildren.remove(pid)
        // WIFEXITED/WTERMSIG are macros Swift does not import.
        return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
    }
}

struct ChildProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The path of the running `dots` executable, so children run exactly this build.
func currentExecutablePath() -> String {
    #if os(Linux)
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    #endif
    return Bundle.main.executablePath ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
}

/// Process groups of children not yet reaped, so that every way out of the launcher — including `exit`
/// from deep inside ArgumentParser — takes them along (`killChildrenAtExit`).
final class ChildRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var pids: Set<pid_t> = []

    func insert(_ pid: pid_t) { lock.withLock { _ = pids.insert(pid) } }
    func remove(_ pid: pid_t) { lock.withLock { _ = pids.remove(pid) } }
    func killAll() { lock.withLock { for pid in pids { kill(-pid, SIGKILL) } } }
}

let liveChildren = ChildRegistry()

/// Registers an atexit hook that SIGKILLs every child still running. The orderly stop has already run on
/// the normal paths; this catches the rest. (Death by signal skips atexit: PR_SET_PDEATHSIG covers that.)
func killChildrenAtExit() {
    atexit { liveChildren.killAll() }
}
