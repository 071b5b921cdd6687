import Foundation

/// Appends little-endian scalars and raw arrays to a growing frame.
struct ByteWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func put(_ value: Float) { put(value.bitPattern) }
    mutating func put(_ value: Double) { put(value.bitPattern) }
    mutating func put(raw: some Collection<UInt8>) { bytes.append(contentsOf: raw) }
}

/// A raw little-endian copy of an array of 4- or 8-byte scalars: one memcpy on little-endian hosts.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    #if _endian(little)
    return values.withUnsafeBytes { [UInt8]($0) }
    #else
    var w = ByteWriter(capacity: values.count * MemoryLayout<T>.size)
    for v in values { w.put(v) }
    return w.bytes
    #endif
}

func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    #if _endian(little)
    return values.withUnsafeBytes { [UInt8]($0) }
    #else
    return littleEndianBytes(values.map(\.bitPattern))
    #endif
}

/// Concatenates many arrays into one raw little-endian frame with a single allocation.
func littleEndianBytes<T: BitwiseCopyable>(concatenating parts: [[T]]) -> [UInt8] {
    let total = parts.reduce(0) { $0 + $1.count } * MemoryLayout<T>.size
    return [UInt8](unsafeUninitializedCapacity: total) { out, count in
        var offset = 0
        for part in parts {
            part.withUnsafeBytes { src in
                guard let base = src.baseAddress, src.count > 0 else { return }
                UnsafeMutableRawPointer(out.baseAddress! + offset).copyMemory(from: base, byteCount: src.count)
                offset += src.count
            }
        }
        #if !_endian(little)
        swapInPlace(out, width: MemoryLayout<T>.size)
        #endif
        count = total
    }
}

#if !_endian(little)
private func swapInPlace(_ buffer: UnsafeMutableBufferPointer<UInt8>, width: Int) {
    var i = 0
    while i + width <= buffer.count {
        buffer[i..<i + width].reverse()
        i += width
    }
}
#endif

/// Reads little-endian scalars from a frame, bounds-checked: running past the end is a `truncated` reject,
/// never a trap.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0
    let what: String

    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    var remaining: Int { bytes.count - offset }

    mutating func get<T: FixedWidthInteger>(_: T.Type = T.self) throws(Rejection) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw Rejection(.truncated, "\(what) ends at byte \(bytes.count), needs \(offset + size)")
        }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func getFloat() throws(Rejection) -> Float { Float(bitPattern: try get(UInt32.self)) }
    mutating func getDouble() throws(Rejection) -> Double { Double(bitPattern: try get(UInt64.self)) }

    mutating func getBytes(_ count: Int) throws(Rejection) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else {
            throw Rejection(.truncated, "\(what) ends at byte \(bytes.count), needs \(offset + count)")
        }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }
}

/// Reads a whole frame as an array of `T` (4 or 8 bytes each), after checking it holds exactly `count`.
func scalars<T: FixedWidthInteger>(_ frame: some WireFrame, count: Int, as _: T.Type, what: String) throws(Rejection) -> [T] {
    let width = MemoryLayout<T>.size
    guard frame.count == count * width else {
        throw Rejection(.lengthMismatch, "\(what) has \(frame.count) bytes, expected \(count) × \(width)")
    }
    return frame.withUnsafeBytes { raw in
        [T](unsafeUninitializedCapacity: count) { out, n in
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
            #if !_endian(little)
            for i in 0..<count { out[i] = T(littleEndian: out[i]) }
            #endif
            n = count
        }
    }
}

/// Reads a frame of f32s, rejecting NaN and ±Inf: a single poisoned value would wreck a whole update.
func finiteFloats(_ frame: some WireFrame, count: Int, what: String) throws(Rejection) -> [Float] {
    guard frame.count == count * 4 else {
        throw Rejection(.lengthMismatch, "\(what) has \(frame.count) bytes, expected \(count) × 4")
    }
    var bad: Int?
    let floats = frame.withUnsafeBytes { raw in
        [Float](unsafeUninitializedCapacity: count) { out, n in
            bad = copyFinite(raw, to: UnsafeMutableRawPointer(out.baseAddress), count: count)
            n = count
        }
    }
    if let bad { throw Rejection(.nonFinite, "\(what)[\(bad)] is NaN or infinite") }
    return floats
}

/// Copies `count` little-endian f32s from `raw` to `dst` and returns the index of the first NaN or ±Inf
/// (exponent bits all ones), if any. One pass: each 64-byte vector is loaded, stored and checked, with
/// the check folded into an accumulator tested once per block, so a 100 MB weights message is copied
/// and validated at memory speed.
func copyFinite(_ raw: UnsafeRawBufferPointer, to dst: UnsafeMutableRawPointer?, count: Int) -> Int? {
    guard count > 0, let dst, let src = raw.baseAddress else { return nil }
    typealias V = SIMD16<UInt32>
    let exponent = V(repeating: 0x7F80_0000), carry = V(repeating: 0x0080_0000), sign = V(repeating: 0x8000_0000)
    var i = 0
    #if _endian(little)
    let block = 256 * V.scalarCount
    while i + block <= count {
        var acc = V.zero
        for j in stride(from: i, to: i + block, by: V.scalarCount) {
            let v = src.loadUnaligned(fromByteOffset: 4 * j, as: V.self)
            dst.storeBytes(of: v, toByteOffset: 4 * j, as: V.self)
            // Exponent all ones + 1 carries into the sign bit: set exactly for NaN and ±Inf.
            acc |= ((v & exponent) &+ carry) & sign
        }
        if acc != .zero { break }
        i += block
    }
    #endif
    // The tail, a block with a bad value, or a big-endian host: one float at a time. A bad value ends
    // the copy: the caller rejects the whole frame.
    while i < count {
        let bits = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        if bits & 0x7F80_0000 == 0x7F80_0000 { return i }
        dst.storeBytes(of: bits, toByteOffset: 4 * i, as: UInt32.self)
        i += 1
    }
    return nil
}
