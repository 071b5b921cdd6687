import Foundation

/// A character tokenizer for the built-in tasks: four special tokens, then printable ASCII (32…126) and
/// newline, one id each. Saved beside the checkpoint as `tokenizer.json`.
public struct CharTokenizer: Sendable, Equatable {
    public static let pad: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2, unk: Int32 = 3
    public let characters: [Character]
    private let index: [Character: Int32]

    public init(characters: [Character]) {
        self.characters = characters
        var index: [Character: Int32] = [:]
        for (i, ch) in characters.enumerated() { index[ch] = Int32(i) + 4 }
        self.index = index
    }

    public static let standard = CharTokenizer(
        characters: (32...126).map { Character(UnicodeScalar(UInt8($0))) } + ["\n"])

    public var vocabSize: Int { characters.count + 4 }

    /// `bos` followed by one id per character; a character outside the vocabulary is an error.
    public func encode(_ text: String, addBOS: Bool = true) throws -> [Int32] {
        var ids: [Int32] = addBOS ? [Self.bos] : []
        for ch in text {
            guard let id = index[ch] else {
                throw ModelError.tokenizer("The character \(String(reflecting: String(ch))) is not in the tokenizer's vocabulary.")
            }
            ids.append(id)
        }
        return ids
    }

    /// Text of the ids up to (not including) the first `eos`; specials are dropped.
    public func decode(_ ids: [Int32]) -> String {
        var s = ""
        for id in ids {
            if id == Self.eos { break }
            let k = Int(id) - 4
            if k >= 0 && k < characters.count { s.append(characters[k]) }
        }
        return s
    }

    struct File: Codable {
        var type: String
        var specials: [String]
        var characters: [String]
    }

    public func save(to url: URL) throws {
        let f = File(type: "dots-char", specials: ["<pad>", "<bos>", "<eos>", "<unk>"],
                     characters: characters.map { String($0) })
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(f).write(to: url)
    }

    public static func load(from url: URL) throws -> CharTokenizer {
        guard let data = try? Data(contentsOf: url) else {
            throw ModelError.tokenizer("Cannot read the tokenizer file \(url.path).")
        }
        guard let f = try? JSONDecoder().decode(File.self, from: data), f.type == "dots-char",
              f.characters.allSatisfy({ $0.count == 1 }) else {
            throw ModelError.tokenizer("The tokenizer file \(url.path) is not a Dots character tokenizer.")
        }
        return CharTokenizer(characters: f.characters.map { Character($0) })
    }
}
