import ArgumentParser
import Foundation
import Wire

/// `dots keys …`: CURVE key pairs for clusters that span machines.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make CURVE key pairs that keep strangers out of a cluster spanning machines.",
        discussion: """
        A cluster across hosts needs one server pair (for the coordinator and learner, which bind) and one \
        pair per host (named in [hosts.NAME] public_key / secret_key). Copy each .public file where it is \
        needed; a .secret file never leaves its host. See docs/protocol.md, "Security".
        """,
        subcommands: [KeysGenerateCommand.self])
}

struct KeysGenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write NAME.public and NAME.secret (mode 0600) with a fresh CURVE key pair, in Z85 text.")

    @Option(help: "Folder to write the key files in (created if missing).") var out: String
    @Option(help: "File name stem: a host name from cluster.conf, or \"server\".") var name = "dots"

    func run() throws {
        guard ZMQContext.has("curve") else {
            throw ValidationError("this libzmq was built without CURVE (zmq_has(\"curve\") is false)")
        }
        let pair = try CurveKeyPair.generate()
        let (pub, sec) = try KeyFiles.write(pair, to: out, name: name)
        print("Wrote \(pub) (share it) and \(sec) (keep it on this host, mode 0600).")
        print("Public key: \(Z85.encode(pair.publicKey))")
    }
}
