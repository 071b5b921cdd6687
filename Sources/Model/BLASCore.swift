import CBLAS
import Foundation

/// Which of OpenBLAS's kernel families this process runs, and a better one when OpenBLAS guessed wrong.
///
/// Debian's OpenBLAS (0.3.21, a DYNAMIC_ARCH build) picks its kernels by CPU model number, and a CPU newer
/// than the library (an Emerald Rapids Xeon, model 207, say) falls back to "Prescott": SSE3 kernels,
/// a fifth of the machine's sgemm speed (32.7 against 154 GFLOP/s measured on such a host). The
/// library reads OPENBLAS_CORETYPE only when it loads, so `dots` sets it from the CPU's own feature
/// flags and starts itself again (`adoptBetterCore`); children inherit the variable.
public enum BLASCore {
    /// The kernel family in use ("Haswell", "SkylakeX", "Prescott"…).
    public static var name: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Kernel families of CPUs without AVX2: on a CPU that has AVX2 and FMA one of these is a misdetection.
    static let preAVX2 = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge", "Katmai",
                          "Coppermine", "Northwood", "Banias", "Opteron", "Opteron(SSE3)", "Barcelona", "Bobcat",
                          "Bulldozer", "Piledriver", "Steamroller", "Excavator"]

    /// The OPENBLAS_CORETYPE to use instead of `current`, given the CPU's feature flags (as /proc/cpuinfo
    /// lists them), or nil when `current` already fits the CPU (or nothing better is certain to run).
    public static func betterCoreType(current: String, cpuFlags: Set<String>) -> String? {
        guard preAVX2.contains(current), cpuFlags.isSuperset(of: ["avx2", "fma"]) else { return nil }
        return cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]) ? "SkylakeX" : "Haswell"
    }

    /// The "flags" line of /proc/cpuinfo (empty where there is none).
    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// When OpenBLAS fell back to kernels older than this CPU and OPENBLAS_CORETYPE is not set, sets it
    /// and replaces this process with a fresh start of the same executable and arguments (Linux only;
    /// returns if anything stands in the way, and the run goes on with the kernels it has).
    public static func adoptBetterCore() {
        #if os(Linux)
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              let better = betterCoreType(current: name, cpuFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        let args = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // execv returned: it failed. Carry on with the kernels already loaded.
        for p in argv { free(p) }
        #endif
    }
}
