import ArgumentParser
import Coordinator
import Foundation
import Model
import RolloutActor
import Tasks

struct PredictorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predictor",
        abstract: "DOTS's adaptive-difficulty predictor: train it offline, measure it.",
        subcommands: [PredictorTrainCommand.self, PredictorEvalCommand.self])
}

/// Options both predictor commands use to roll prompts out.
struct LabelOptions: ParsableArguments {
    @Option(help: "Sampling temperature of the label rollouts.") var temperature: Float = 1
    @Option(help: "Maximum new tokens per completion.") var maxTokens: Int = 12
    @Option(help: "Seed of prompt subsets, reference draws and sampling.") var seed: UInt64 = 0
}

struct PredictorTrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the difficulty predictor on the pass rates of several source checkpoints.",
        discussion: """
        Labels: each source checkpoint (policies of different strength, e.g. `dots pretrain`'s source-1…3 \
        and base) samples --samples completions of --prompts random train-split prompts; a prompt's label \
        under a source is its failure rate (adaptive difficulty). Embeddings: the frozen --embedder \
        checkpoint's mean-pooled final hidden state of every train prompt (copied into OUT/embedder and \
        cached in OUT/embeddings). Training: BCE on the soft labels, Adam with warm-up then linear decay, \
        each batch a fresh random reference set of K prompts under one source. 10% of the labelled prompts \
        are held out and the report gives ρ on them per source. Labels are cached in OUT/labels, so a \
        second run into the same OUT retrains without rolling out again.
        """)

    @Option(parsing: .upToNextOption, help: "Source checkpoint folders (labels come from their pass rates).") var sources: [String]
    @Option(help: "Output folder of the predictor.") var out: String
    @Option(help: "Frozen embedding checkpoint (the RL base).") var embedder: String = "checkpoints/base"
    @Option(help: "Train-split prompts to label (a seeded random subset).") var prompts: Int = 3000
    @Option(help: "Completions per prompt and source.") var samples: Int = 8
    @Option(help: "Training steps.") var steps: Int = 2000
    @Option(help: "Query prompts per batch.") var batchSize: Int = 256
    @Option(help: "K: reference prompts per batch.") var references: Int = 128
    @Option(help: "Adam's peak learning rate.") var learningRate: Float = 1e-3
    @Option(help: "Tower hidden width.") var hidden: Int = 256
    @Option(help: "Tower output width h (attention width).") var outputDim: Int = 128
    @OptionGroup var label: LabelOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if sources.isEmpty { throw ValidationError("Give at least one --sources checkpoint.") }
        if prompts < 20 { throw ValidationError("--prompts must be at least 20.") }
        if samples < 1 || steps < 1 || batchSize < 1 || references < 1 || hidden < 1 || outputDim < 1 {
            throw ValidationError("--samples, --steps, --batch-size, --references, --hidden and --output-dim must be positive.")
        }
    }

    func run() throws {
        compute.apply()
        do { try train() } catch let e as ModelError { throw UserError(e.description) }
    }

    private func train() throws {
        let start = Date()
        let outURL = URL(fileURLWithPath: out)
        let fm = FileManager.default
        let embedderURL = outURL.appendingPathComponent("embedder")
        _ = try Checkpoint.loadConfig(URL(fileURLWithPath: embedder))
        for s in sources { _ = try Checkpoint.loadConfig(URL(fileURLWithPath: s)) }
        try fm.createDirectory(at: embedderURL, withIntermediateDirectories: true)
        for f in [Checkpoint.weightsFile, Checkpoint.configFile, Checkpoint.tokenizerFile] {
            let src = URL(fileURLWithPath: embedder).appendingPathComponent(f), dst = embedderURL.appendingPathComponent(f)
            guard fm.fileExists(atPath: src.path) else { continue }
            try? fm.removeItem(at: dst)
            try fm.copyItem(at: src, to: dst)
        }
        let train = TaskSuite.builtIn(seed: 1).train
        let emb = try embed(train, embedderURL, cache: outURL.appendingPathComponent("embeddings"))

        // The labelled subset and its held-out tenth.
        var rng = SplitMix64(seed: label.seed)
        var order = Array(train.indices)
        order.shuffle(using: &rng)
        let labelled = Array(order.prefix(min(prompts, train.count)))
        let nHeld = max(10, labelled.count / 10)
        let heldOut = Array(labelled.prefix(nHeld)), trainRows = Array(labelled.dropFirst(nHeld))

        var labels: [[Float]] = []
        for (i, source) in sources.enumerated() {
            let measured = try sourceLabels(source, index: i, problems: labelled.map { train[$0] }, cache: outURL.appendingPathComponent("labels"))
            var full = [Float](repeating: 0, count: train.count)
            for (row, d) in zip(labelled, measured) { full[row] = d }
            labels.append(full)
            let effective = measured.filter { $0 > 0 && $0 < 1 }.count
            print(String(format: "  %@: mean difficulty %.3f, %.1f%% of prompts strictly between 0 and 1", source,
                         measured.reduce(0, +) / Float(measured.count), 100 * Double(effective) / Double(measured.count)))
        }

        let predictor = DifficultyPredictor(config: PredictorConfig(embeddingDim: emb.dim, hiddenDim: hidden, outputDim: outputDim))
        predictor.initialize(seed: label.seed &+ 1)
        var settings = PredictorTrainingSettings()
        settings.steps = steps
        settings.batchSize = batchSize
        settings.references = references
        settings.learningRate = learningRate
        settings.seed = label.seed &+ 2
        let bar = ProgressLine()
        let trainStart = Date()
        PredictorTrainer.train(predictor, embeddings: emb.values, labels: labels, rows: trainRows, settings: settings) { step, loss in
            let el = Date().timeIntervalSince(trainStart), f = Double(step) / Double(steps)
            bar.update(fraction: f, String(format: "training: step %d/%d  loss %.4f  ETA %@", step, steps, loss, formatDuration(el / f - el)))
        }
        bar.finish()

        var scores: [[String: Any]] = []
        print("held-out ρ (\(heldOut.count) prompts, K = \(min(references, trainRows.count)) references from the training prompts):")
        for (i, source) in sources.enumerated() {
            var r = SplitMix64(seed: label.seed &+ 3 &+ UInt64(i))
            let refs = Array(trainRows.shuffled(using: &r).prefix(references))
            let s = PredictorTrainer.score(predictor, embeddings: emb.values, measured: labels[i], referenceRows: refs, queryRows: heldOut)
            print(String(format: "  %@: ρ %.3f (without re-fit %.3f), MAE %.3f", source, s.rho, s.rhoWithoutRefit, s.meanAbsoluteError))
            scores.append(["source": source, "rho": s.rho, "rho_without_refit": s.rhoWithoutRefit, "mae": s.meanAbsoluteError])
        }
        let info: [String: Any] = [
            "embedder": "embedder", "embedder_source": embedder, "sources": sources, "dataset": "built-in suite, seed 1, train split",
            "labelled_prompts": labelled.count, "held_out_prompts": heldOut.count, "samples": samples,
            "temperature": Double(label.temperature), "max_tokens": label.maxTokens, "steps": steps, "batch_size": batchSize,
            "references": references, "learning_rate": Double(learningRate), "seed": label.seed, "held_out": scores,
            "labelled_ids": labelled.map { train[$0].id },
        ]
        try predictor.save(to: outURL, info: info)
        print("Wrote \(out) (\(predictor.parameterCount) parameters) in \(formatDuration(Date().timeIntervalSince(start))).")
    }

    private func embed(_ problems: [Problem], _ embedder: URL, cache: URL) throws -> (dim: Int, values: [Float]) {
        let bar = ProgressLine()
        defer { bar.finish() }
        return try PromptEmbeddings.cached(problems, embedder: embedder, cacheDir: cache) { done, total in
            bar.update(fraction: Double(done) / Double(total), "embedding \(done)/\(total) prompts")
        }
    }

    /// Difficulty (1 − pass rate) of each problem under one source, cached by source weights and settings.
    private func sourceLabels(_ source: String, index: Int, problems: [Problem], cache: URL) throws -> [Float] {
        let url = URL(fileURLWithPath: source)
        let key = try labelKey(url, problems: problems)
        let file = cache.appendingPathComponent("labels-\(key).json")
        if let data = try? Data(contentsOf: file), let values = try? JSONDecoder().decode([Float].self, from: data), values.count == problems.count {
            print("labels of \(source): cached (\(file.lastPathComponent))")
            return values
        }
        let (model, tok) = try Checkpoint.load(url)
        let engine = RolloutEngine(model: model, tokenizer: tok)
        let bar = ProgressLine()
        let start = Date()
        let options = SamplingOptions(temperature: label.temperature, maxNewTokens: label.maxTokens, seed: label.seed &+ UInt64(index) &* 7919)
        let rollouts = try engine.rollout(problems, samples: samples, options: options) { done, total in
            let el = Date().timeIntervalSince(start), f = Double(done) / Double(total)
            bar.update(fraction: f, "labels of \(source): \(done)/\(total) completions  ETA \(formatDuration(el / f - el))")
        }
        bar.finish()
        let values = rollouts.map { Float(1 - $0.passRate) }
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        try JSONEncoder().encode(values).write(to: file, options: .atomic)
        return values
    }

    private func labelKey(_ source: URL, problems: [Problem]) throws -> String {
        guard let bytes = try? Data(contentsOf: source.appendingPathComponent(Checkpoint.weightsFile), options: .alwaysMapped) else {
            throw UserError("No source checkpoint weights at \(source.appendingPathComponent(Checkpoint.weightsFile).path).")
        }
        var h = FNV1a()
        h.add(bytes)
        h.add(Data("\(problems.map(\.id))|\(samples)|\(label.temperature)|\(label.maxTokens)|\(label.seed)".utf8))
        return String(format: "%016llx", h.value)
    }
}

struct PredictorEvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Pearson ρ between predicted and measured adaptive difficulty of held-out prompts under a checkpoint.",
        discussion: """
        The checkpoint rolls out K random train-split reference prompts (--reference-samples each) and \
        --prompts held-out prompts (--samples each): with --split train (the default, what the coordinator \
        predicts during training) random train-split prompts the predictor was not trained on, with --split \
        test the first test-split prompts. The \
        predictor predicts the test prompts' difficulty from the references' measured difficulty, as the \
        coordinator does during training; ρ compares it with the measured difficulty. The report also gives \
        the split-half ceiling: ρ between two independent halves of the samples, stepped up to the full \
        count (Spearman–Brown); no predictor can correlate with noisy labels much beyond its square root.
        """)

    @Option(help: "Predictor folder (from `dots predictor train`).") var predictor: String
    @Option(help: "Checkpoint whose adaptive difficulty is predicted.") var checkpoint: String
    @Option(help: "Held-out prompts.") var prompts: Int = 1000
    @Option(help: "Where the held-out prompts come from: train (those the predictor was not trained on) or test.") var split: String = "train"
    @Option(help: "Samples per held-out prompt (its measured difficulty).") var samples: Int = 8
    @Option(help: "K: reference prompts.") var references: Int = 128
    @Option(help: "G: samples per reference prompt.") var referenceSamples: Int = 8
    @Option(help: "Re-fit of the predictions on the reference set: linear (the authors'), isotonic or none.") var refit: String = "linear"
    @Option(help: "Also draw this many prompts as a selection round would (P ∝ exp(−|d̂ − α|/τ)) and report their measured difficulty.") var select: Int = 64
    @Option(help: "α of that draw.") var alpha: Double = 0.5
    @Option(help: "τ of that draw.") var tau: Double = 1e-3
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var label: LabelOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if DifficultyPredictor.Refit(rawValue: refit) == nil { throw ValidationError("--refit must be linear, isotonic or none, not \(refit).") }
        if split != "train" && split != "test" { throw ValidationError("--split must be train or test, not \(split).") }
        if prompts < 2 || samples < 1 || references < 1 || referenceSamples < 1 {
            throw ValidationError("--prompts must be at least 2; --samples, --references and --reference-samples positive.")
        }
    }

    func run() throws {
        compute.apply()
        do { try evaluate() } catch let e as ModelError { throw UserError(e.description) }
    }

    private func evaluate() throws {
        let dir = URL(fileURLWithPath: predictor)
        let (p, info) = try DifficultyPredictor.load(from: dir)
        let suite = TaskSuite.builtIn(seed: 1)
        var rng = SplitMix64(seed: label.seed)
        let shuffled = suite.train.shuffled(using: &rng)
        let refs = Array(shuffled.prefix(references))
        var labelled = (info["labelled_ids"] as? [Int]) ?? []
        if labelled.isEmpty, let n = info["labelled_prompts"] as? Int, let seed = info["seed"] as? Int {
            // Folders written before labelled_ids was stored: redraw the training command's subset.
            var r = SplitMix64(seed: UInt64(seed))
            var order = Array(suite.train.indices)
            order.shuffle(using: &r)
            labelled = order.prefix(n).map { suite.train[$0].id }
        }
        let seen = Set(labelled).union(refs.map(\.id))
        let held = split == "test" ? Array(suite.test.prefix(prompts))
            : Array(shuffled.dropFirst(references).filter { !seen.contains($0.id) }.prefix(prompts))
        let embedder = dir.appendingPathComponent("embedder"), cache = dir.appendingPathComponent("embeddings")
        let zRef = try PromptEmbeddings.cached(suite.train, embedder: embedder, cacheDir: cache)
        let zHeld = try PromptEmbeddings.cached(held, embedder: embedder, cacheDir: cache)
        guard zRef.dim == p.config.embeddingDim else {
            throw UserError("The predictor expects \(p.config.embeddingDim)-wide embeddings but its embedder gives \(zRef.dim).")
        }
        let (model, tok) = try Checkpoint.load(URL(fileURLWithPath: checkpoint))
        let engine = RolloutEngine(model: model, tokenizer: tok)
        let start = Date()
        let bar = ProgressLine()
        let opts = SamplingOptions(temperature: label.temperature, maxNewTokens: label.maxTokens, seed: label.seed)
        let refRoll = try engine.rollout(refs, samples: referenceSamples, options: opts)
        var opts2 = opts
        opts2.seed = label.seed &+ 1
        let heldRoll = try engine.rollout(held, samples: samples, options: opts2) { done, total in
            let el = Date().timeIntervalSince(start), f = Double(done) / Double(total)
            bar.update(fraction: f, "rolling out \(done)/\(total) completions  ETA \(formatDuration(el / f - el))")
        }
        bar.finish()
        let rolloutSeconds = Date().timeIntervalSince(start)
        let refLabels = refRoll.map { Float(1 - $0.passRate) }
        let truth = heldRoll.map { 1 - $0.passRate }
        let t0 = Date()
        let refRows = refs.map(\.id)  // train ids are row indices
        let refZ = gatherRows(zRef.values, dim: zRef.dim, refRows)
        let raw = p.predict(queries: zHeld.values, references: refZ, labels: refLabels, mode: .none)
        let used = p.predict(queries: zHeld.values, references: refZ, labels: refLabels, mode: DifficultyPredictor.Refit(rawValue: refit)!)
        let predictSeconds = Date().timeIntervalSince(t0)
        let rho = pearson(used.map(Double.init), truth)
        let mae = zip(used, truth).map { abs(Double($0) - $1) }.reduce(0, +) / Double(truth.count)
        // What a selection round would draw from these predictions, and what it would really get.
        var srng = SplitMix64(seed: label.seed &+ 5)
        let picked = Selection.draw(difficulties: used, count: select, alpha: alpha, tau: tau, rng: &srng)
        let pickedTruth = picked.map { truth[$0] }
        let selected: [String: Any] = [
            "count": picked.count, "alpha": alpha, "tau": tau,
            "predicted_mean_difficulty": picked.map { Double(used[$0]) }.reduce(0, +) / Double(max(1, picked.count)),
            "measured_mean_difficulty": pickedTruth.reduce(0, +) / Double(max(1, picked.count)),
            "measured_effective_fraction": Double(pickedTruth.filter { $0 > 0 && $0 < 1 }.count) / Double(max(1, picked.count)),
        ]
        // Calibration: the measured difficulty of the prompts in each tenth of the predicted range.
        var bins: [[Double]] = []
        for b in 0..<10 {
            let lo = Float(b) / 10, hi = Float(b + 1) / 10
            let members = used.indices.filter { used[$0] >= lo && (used[$0] < hi || (b == 9 && used[$0] <= 1)) }
            if members.isEmpty { continue }
            bins.append([Double(lo), Double(members.count), members.map { truth[$0] }.reduce(0, +) / Double(members.count)])
        }
        // Split-half reliability of the measured labels.
        let half = samples / 2
        var ceiling: Double?
        if half >= 1 {
            let a = heldRoll.map { r in 1 - r.completions.prefix(half).map(\.reward).reduce(0, +) / Double(half) }
            let b = heldRoll.map { r in 1 - r.completions.suffix(samples - half).map(\.reward).reduce(0, +) / Double(samples - half) }
            let r = pearson(a, b)
            let reliability = 2 * r / (1 + r)
            ceiling = reliability > 0 ? reliability.squareRoot() : 0
        }
        let report: [String: Any] = [
            "checkpoint": checkpoint, "predictor": predictor, "split": split, "prompts": held.count, "samples": samples,
            "references": refs.count, "reference_samples": referenceSamples, "refit": refit,
            "rho": rho, "rho_without_refit": pearson(raw.map(Double.init), truth),
            "mae": mae,
            "measured_mean_difficulty": truth.reduce(0, +) / Double(truth.count),
            "predicted_mean_difficulty": Double(used.reduce(0, +)) / Double(used.count),
            "measured_effective_fraction": Double(truth.filter { $0 > 0 && $0 < 1 }.count) / Double(truth.count),
            "rho_ceiling": ceiling ?? NSNull(), "rollout_seconds": rolloutSeconds, "predict_seconds": predictSeconds,
            "selected": selected, "calibration": bins,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "ρ = %.3f (%@) on %d held-out %@-split prompts × %d samples, K = %d references × %d samples",
                         rho, refit == "none" ? "no re-fit" : "with the \(refit) re-fit", held.count, split, samples, refs.count, referenceSamples))
            print(String(format: "  ρ without re-fit %.3f; MAE %.3f; measured mean difficulty %.3f, predicted %.3f",
                         report["rho_without_refit"] as! Double, mae, report["measured_mean_difficulty"] as! Double,
                         report["predicted_mean_difficulty"] as! Double))
            if let ceiling { print(String(format: "  split-half ceiling of ρ against %d-sample labels: %.3f", samples, ceiling)) }
            print(String(format: "  a selection of %d (α %g, τ %g): predicted difficulty %.3f, measured %.3f, %.0f%% effective (all prompts: %.0f%%)",
                         picked.count, alpha, tau, selected["predicted_mean_difficulty"] as! Double, selected["measured_mean_difficulty"] as! Double,
                         100 * (selected["measured_effective_fraction"] as! Double), 100 * (report["measured_effective_fraction"] as! Double)))
            print("  calibration (predicted bin: prompts, measured mean difficulty): " + bins.map { String(format: "%.1f–%.1f: %d, %.2f", $0[0], $0[0] + 0.1, Int($0[1]), $0[2]) }.joined(separator: "; "))
            print(String(format: "  rollouts %.1f s, prediction %.3f s", rolloutSeconds, predictSeconds))
        }
    }
}
