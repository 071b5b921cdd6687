#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A flat, heap-allocated array of `Float` with a stable address: the storage under parameters,
/// gradients, optimizer moments and activations (llm.c's layout). Kernels take its pointer; nothing
/// outside `Model` touches raw memory.
///
/// On Linux a buffer of a huge page (2 MiB) or more is aligned to one and asks the kernel for
/// transparent huge pages (`madvise`, which Debian's default "madvise" mode needs): a training step
/// streams ≈ 150 MB of activations, and with 4 KiB pages every 4 KiB of that costs a TLB miss
/// (the benchmark's training step ran ≈ 3% faster; docs/benchmarks.md, session 12).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    let ptr: UnsafeMutablePointer<Float>
    /// Whether `ptr` came from posix_memalign (freed with free) rather than Swift's allocator.
    private let hugePageAligned: Bool

    static let hugePageBytes = 2 << 20

    public init(count: Int, value: Float = 0) {
        self.count = count
        let n = Swift.max(count, 1)
        (ptr, hugePageAligned) = Self.allocate(n)
        ptr.initialize(repeating: value, count: n)
    }

    private static func allocate(_ n: Int) -> (UnsafeMutablePointer<Float>, Bool) {
        #if os(Linux)
        let bytes = n * MemoryLayout<Float>.stride
        if bytes >= hugePageBytes {
            let rounded = (bytes + hugePageBytes - 1) / hugePageBytes * hugePageBytes
            var raw: UnsafeMutableRawPointer?
            if posix_memalign(&raw, hugePageBytes, rounded) == 0, let raw {
                // Advice only: where THP is off the pages are simply 4 KiB.
                _ = madvise(raw, rounded, MADV_HUGEPAGE)
                return (raw.bindMemory(to: Float.self, capacity: n), true)
            }
        }
        #endif
        return (.allocate(capacity: n), false)
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { ptr.update(from: base, count: values.count) }
        }
    }

    deinit {
        if hugePageAligned { free(ptr) } else { ptr.deallocate() }
    }

    /// The raw storage, for serialisation; valid while the buffer lives.
    public var pointer: UnsafePointer<Float> { UnsafePointer(ptr) }

    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "FloatBuffer index out of range"); return ptr[i] }
        set { precondition(i >= 0 && i < count, "FloatBuffer index out of range"); ptr[i] = newValue }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }

    public func slice(_ offset: Int, _ length: Int) -> [Float] {
        precondition(offset >= 0 && offset + length <= count)
        return Array(UnsafeBufferPointer(start: ptr + offset, count: length))
    }

    public func zero() { ptr.update(repeating: 0, count: count) }

    /// self[range] += other[range], eight lanes at a time (a data-parallel learner sums its replicas'
    /// gradients with it, each thread a range).
    public func add(_ other: FloatBuffer, range: Range<Int>) {
        precondition(other.count == count && range.lowerBound >= 0 && range.upperBound <= count)
        axpy(ptr + range.lowerBound, 1, other.ptr + range.lowerBound, range.count)
    }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        ptr.update(from: other.ptr, count: count)
    }

    public func write(_ values: [Float], at offset: Int) {
        precondition(offset >= 0 && offset + values.count <= count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { (ptr + offset).update(from: base, count: values.count) }
        }
    }
}

/// A scratch buffer that only grows: activations are re-used across steps of similar size.
final class Scratch {
    private(set) var buffer = FloatBuffer(count: 0)
    func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
        if buffer.count < n { buffer = FloatBuffer(count: n) }
        return buffer.ptr
    }
}
