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
func scalars<T: FixedWidthInteger>(_ frame: [UInt8], count: Int, as _: T.Type, what: String) throws(Rejection) -> [T] {
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
func finiteFloats(_ frame: [UInt8], count: Int, what: String) throws(Rejection) -> [Float] {
    guard frame.count == count * 4 else {
        throw Rejection(.lengthMismatch, "\(what) has \(frame.count) bytes, expected \(count) × 4")
    }
    let floats = frame.withUnsafeBytes { raw in
        [Float](unsafeUninitializedCapacity: count) { out, n in
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
            #if !_endian(little)
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
            #endif
            n = count
        }
    }
    if let bad = firstNonFinite(floats) {
        throw Rejection(.nonFinite, "\(what)[\(bad)] is \(floats[bad])")
    }
    return floats
}

/// Index of the first NaN or ±Inf (exponent bits all ones), checking blocks branch-free so the scan runs
/// at memory speed on a 100 MB weights message.
func firstNonFinite(_ values: [Float]) -> Int? {
    values.withUnsafeBufferPointer { floats in
        floats.withMemoryRebound(to: UInt32.self) { buf -> Int? in
            var i = 0
            while i < buf.count {
                let end = min(buf.count, i + 4096)
                var any: UInt32 = 0
                for j in i..<end { any |= ((buf[j] & 0x7F80_0000) &+ 0x0080_0000) & 0x8000_0000 }
                if any != 0 {
                    for j in i..<end where buf[j] & 0x7F80_0000 == 0x7F80_0000 { return j }
                }
                i = end
            }
            return nil
        }
    }
}
