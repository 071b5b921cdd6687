import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
/// `{dtype, shape, data_offsets}` (offsets relative to the end of the header), then the raw data.
public enum SafeTensors {
    public struct Tensor: Sendable {
        public var dtype: String
        public var shape: [Int]
        /// Raw little-endian bytes.
        public var data: Data
    }

    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            header[name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.count]]
            offset += t.data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors { out.append(t.data) }
        try out.write(to: url, options: .atomic)
    }

    /// Reads every tensor, checking the header and that each tensor's bytes lie inside the file.
    public static func read(_ url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let path = url.path
        guard let data = try? Data(contentsOf: url, options: .alwaysMapped) else {
            throw ModelError.checkpoint("Cannot read \(path): the file is missing or unreadable.")
        }
        guard data.count >= 8 else {
            throw ModelError.checkpoint("\(path) is truncated: \(data.count) bytes, too short for a safetensors header.")
        }
        let headerLen = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLen <= UInt64(data.count - 8), headerLen <= 100_000_000 else {
            throw ModelError.checkpoint("\(path) is truncated or not a safetensors file: its header claims \(headerLen) bytes but the file has \(data.count).")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLen)))
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw ModelError.checkpoint("\(path) is not a safetensors file: its header is not a JSON object.")
        }
        let base = 8 + Int(headerLen)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
                  offsets.count == 2 else {
                throw ModelError.checkpoint("\(path): the header entry for tensor \(name) is malformed.")
            }
            let (start, end) = (offsets[0], offsets[1])
            guard start >= 0, end >= start, base + end <= data.count else {
                throw ModelError.checkpoint("\(path) is truncated: tensor \(name) needs bytes \(start)..<\(end) of the data section, which has \(data.count - base).")
            }
            let elementSize = ["F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I64": 8, "F64": 8, "U8": 1][dtype] ?? 0
            guard shape.allSatisfy({ $0 >= 0 }), elementSize == 0 || shape.reduce(1, *) * elementSize == end - start else {
                throw ModelError.checkpoint("\(path): tensor \(name) has shape \(shape) and dtype \(dtype) but \(end - start) bytes.")
            }
            tensors[name] = Tensor(dtype: dtype, shape: shape, data: data.subdata(in: (base + start)..<(base + end)))
        }
        return (tensors, metadata)
    }

    public static func float32(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> Tensor {
        var d = Data(count: values.count * 4)
        d.withUnsafeMutableBytes { raw in
            let out = raw.bindMemory(to: UInt32.self)
            for i in 0..<values.count { out[i] = values[i].bitPattern.littleEndian }
        }
        return Tensor(dtype: "F32", shape: shape, data: d)
    }

    /// Decodes an F32 tensor into floats.
    public static func floats(_ t: Tensor) -> [Float] {
        t.data.withUnsafeBytes { raw in
            (0..<(t.data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }
}
