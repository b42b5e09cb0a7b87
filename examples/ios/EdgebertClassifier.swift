// EdgebertClassifier.swift: classify text on iOS with an edgebert `mobile` artifact.
//
// NOT COMPILED in the edgebert repository (it has no Apple toolchain). It mirrors tested Python:
//   * tokenisation: edgebert/runtime/wordpiece.py, function for function under the same names
//     (is_whitespace -> isWhitespace, split_on_added_tokens -> splitOnAddedTokens, ...);
//     the spec is docs/tokenization.md;
//   * inference: edgebert.runtime.Classifier (inputs by the session's input names, softmax,
//     arg-max, threshold -> unknown label).
// Text is handled as arrays of Unicode scalars, never as String / Character: Swift compares
// Strings by canonical equivalence ("é" == "e\u{301}") and counts grapheme clusters, while the
// tokenizer must match code points exactly.
// Dependency: CocoaPods `pod 'onnxruntime-objc'` (or a bridging header with #import <onnxruntime.h>),
// or Swift Package Manager `onnxruntime-swift-package-manager`; for a text-in artifact (the mobile recipe's
// default: the tokenizer is in the model) also `pod 'onnxruntime-extensions-c'` and a bridging header with
// #import <onnxruntime_extensions.h> (token-in apps without it: delete the line that registers
// RegisterCustomOps). Setup and usage: docs/mobile.md.

import Foundation
#if canImport(OnnxRuntimeBindings)
import OnnxRuntimeBindings  // Swift Package Manager
#elseif canImport(onnxruntime_objc)
import onnxruntime_objc  // CocoaPods with use_frameworks!
#endif

typealias Scalars = [Unicode.Scalar]

enum EdgebertError: Error {
    case unsupported(String)
    case badFile(String)
}

func scalars(_ s: String) -> Scalars { Array(s.unicodeScalars) }
func string(_ s: Scalars) -> String { String(String.UnicodeScalarView(s)) }

// MARK: - Character classes

let WHITESPACE: Set<UInt32> = Set([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + Array(0x2000...0x200A) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

// U+2B820...U+2B91F are not included, as in Hugging Face's tokenizers (docs/tokenization.md).
let CHINESE_RANGES: [ClosedRange<UInt32>] = [
    0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
    0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F,
]

func isWhitespace(_ c: Unicode.Scalar) -> Bool { WHITESPACE.contains(c.value) }

func isControl(_ c: Unicode.Scalar) -> Bool {
    if c.value == 0x09 || c.value == 0x0A || c.value == 0x0D { return false }
    switch c.properties.generalCategory {
    case .control, .format, .privateUse, .surrogate: return true
    default: return false
    }
}

func isPunctuation(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
        return true
    }
    switch c.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default:
        return false
    }
}

func isChineseChar(_ c: Unicode.Scalar) -> Bool {
    c.value >= 0x3400 && CHINESE_RANGES.contains { $0.contains(c.value) }
}

// MARK: - Settings and vocabulary

struct TokenizerSettings {
    var cleanText = true
    var handleChineseChars = true
    var stripAccents = true
    var lowercase = true
    var unkToken = scalars("[UNK]")
    var clsToken = scalars("[CLS]")
    var sepToken = scalars("[SEP]")
    var continuingSubwordPrefix = scalars("##")
    var maxInputCharsPerWord = 100
    var addedTokens: [Scalars] = []
}

/// read_settings(), tokenizer.json branch.
func readSettings(_ tokenizerJson: Data) throws -> TokenizerSettings {
    guard let tok = try JSONSerialization.jsonObject(with: tokenizerJson) as? [String: Any],
          let model = tok["model"] as? [String: Any],
          let norm = tok["normalizer"] as? [String: Any] else {
        throw EdgebertError.badFile("tokenizer.json")
    }
    guard model["type"] as? String == "WordPiece", norm["type"] as? String == "BertNormalizer" else {
        throw EdgebertError.unsupported("only WordPiece (BERT family) tokenizers, see docs/tokenization.md")
    }
    var s = TokenizerSettings()
    s.lowercase = norm["lowercase"] as? Bool ?? true
    s.stripAccents = norm["strip_accents"] as? Bool ?? s.lowercase  // JSON null: same as lowercase
    s.cleanText = norm["clean_text"] as? Bool ?? true
    s.handleChineseChars = norm["handle_chinese_chars"] as? Bool ?? true
    s.unkToken = scalars(model["unk_token"] as? String ?? "[UNK]")
    s.continuingSubwordPrefix = scalars(model["continuing_subword_prefix"] as? String ?? "##")
    s.maxInputCharsPerWord = model["max_input_chars_per_word"] as? Int ?? 100
    let post = tok["post_processor"] as? [String: Any] ?? [:]
    if post["type"] as? String == "BertProcessing",
       let cls = (post["cls"] as? [Any])?.first as? String, let sep = (post["sep"] as? [Any])?.first as? String {
        s.clsToken = scalars(cls)
        s.sepToken = scalars(sep)
    } else if post["type"] as? String == "TemplateProcessing", let single = post["single"] as? [[String: Any]],
              single.count == 3,  // [SpecialToken [CLS]] [Sequence A] [SpecialToken [SEP]]
              let cls = (single[0]["SpecialToken"] as? [String: Any])?["id"] as? String,
              let sep = (single[2]["SpecialToken"] as? [String: Any])?["id"] as? String {
        s.clsToken = scalars(cls)
        s.sepToken = scalars(sep)
    }
    s.addedTokens = (tok["added_tokens"] as? [[String: Any]] ?? []).compactMap { ($0["content"] as? String).map(scalars) }
    return s
}

/// load_vocab(): line i of vocab.txt is id i.
func loadVocab(_ vocabTxt: Data) -> [Scalars: Int] {
    var lines = String(decoding: vocabTxt, as: UTF8.self).unicodeScalars
        .split(separator: "\n", omittingEmptySubsequences: false).map { Array($0) }
    if lines.last?.isEmpty == true { lines.removeLast() }  // the file's final newline
    var vocab = [Scalars: Int](minimumCapacity: lines.count)
    for (i, line) in lines.enumerated() {
        let token = line.last == "\r" ? Array(line.dropLast()) : line
        if vocab[token] == nil { vocab[token] = i }
    }
    return vocab
}

// MARK: - Steps

/// Index of the first occurrence of `needle` in `text` at or after `from`, comparing scalars.
private func find(_ needle: Scalars, in text: Scalars, from: Int) -> Int? {
    guard !needle.isEmpty, text.count >= needle.count, from <= text.count - needle.count else { return nil }
    for i in from...(text.count - needle.count) where text[i..<(i + needle.count)].elementsEqual(needle) {
        return i
    }
    return nil
}

func splitOnAddedTokens(_ text: Scalars, _ addedTokens: [Scalars]) -> [(Scalars, Bool)] {
    var pieces: [(Scalars, Bool)] = []
    var start = 0
    while true {
        var best: (pos: Int, token: Scalars)? = nil
        for token in addedTokens {
            if let pos = find(token, in: text, from: start),
               best == nil || pos < best!.pos || (pos == best!.pos && token.count > best!.token.count) {
                best = (pos, token)
            }
        }
        guard let found = best else { break }
        if found.pos > start { pieces.append((Array(text[start..<found.pos]), false)) }
        pieces.append((found.token, true))
        start = found.pos + found.token.count
    }
    if start < text.count { pieces.append((Array(text[start...]), false)) }
    return pieces
}

func cleanText(_ text: Scalars) -> Scalars {
    var out = Scalars()
    for c in text where !(c.value == 0 || c.value == 0xFFFD || isControl(c)) {
        out.append(isWhitespace(c) ? " " : c)
    }
    return out
}

func padChineseChars(_ text: Scalars) -> Scalars {
    var out = Scalars()
    for c in text {
        if isChineseChar(c) { out += [" ", c, " "] } else { out.append(c) }
    }
    return out
}

func stripAccents(_ text: Scalars) -> Scalars {
    Array(string(text).decomposedStringWithCanonicalMapping.unicodeScalars)  // NFD
        .filter { $0.properties.generalCategory != .nonspacingMark }
}

/// One scalar at a time, full mapping: no final-sigma rule (Σ -> σ everywhere), İ -> i̇.
func lowercase(_ text: Scalars) -> Scalars {
    text.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) }
}

func normalize(_ text: Scalars, _ settings: TokenizerSettings) -> Scalars {
    var t = text
    if settings.cleanText { t = cleanText(t) }
    if settings.handleChineseChars { t = padChineseChars(t) }
    if settings.stripAccents { t = stripAccents(t) }
    if settings.lowercase { t = lowercase(t) }
    return t
}

func preTokenize(_ text: Scalars) -> [Scalars] {
    var words: [Scalars] = []
    var current = Scalars()
    for c in text {
        if isWhitespace(c) || isPunctuation(c) {
            if !current.isEmpty { words.append(current); current = [] }
            if !isWhitespace(c) { words.append([c]) }
        } else {
            current.append(c)
        }
    }
    if !current.isEmpty { words.append(current) }
    return words
}

func wordpiece(_ word: Scalars, _ vocab: [Scalars: Int], _ settings: TokenizerSettings) -> [Scalars] {
    if word.count > settings.maxInputCharsPerWord { return [settings.unkToken] }
    var pieces: [Scalars] = []
    var start = 0
    while start < word.count {
        var end = word.count
        var piece: Scalars? = nil
        while end > start {
            var candidate = Array(word[start..<end])
            if start > 0 { candidate = settings.continuingSubwordPrefix + candidate }
            if vocab[candidate] != nil { piece = candidate; break }
            end -= 1
        }
        guard let found = piece else { return [settings.unkToken] }
        pieces.append(found)
        start = end
    }
    return pieces
}

/// encode()'s result: three int64 rows of the same length, fed as tensors of shape [1, n].
struct Encoding {
    let inputIds: [Int64]
    let attentionMask: [Int64]
    let tokenTypeIds: [Int64]
}

final class WordPieceTokenizer {
    let vocab: [Scalars: Int]
    let settings: TokenizerSettings
    private let clsId: Int
    private let sepId: Int

    init(vocab: [Scalars: Int], settings: TokenizerSettings) throws {
        guard let cls = vocab[settings.clsToken], let sep = vocab[settings.sepToken] else {
            throw EdgebertError.badFile("[CLS] / [SEP] not in vocab.txt")
        }
        self.vocab = vocab
        self.settings = settings
        clsId = cls
        sepId = sep
    }

    /// from_folder(): vocab.txt for the ids, tokenizer.json for the settings.
    static func fromFiles(vocabTxt: Data, tokenizerJson: Data) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocab: loadVocab(vocabTxt), settings: readSettings(tokenizerJson))
    }

    func tokenize(_ text: String) -> [Scalars] {
        var tokens: [Scalars] = []
        for (piece, isAdded) in splitOnAddedTokens(scalars(text), settings.addedTokens) {
            if isAdded { tokens.append(piece); continue }
            for word in preTokenize(normalize(piece, settings)) { tokens += wordpiece(word, vocab, settings) }
        }
        return tokens
    }

    func encode(_ text: String, maxLength: Int) throws -> Encoding {
        guard maxLength >= 2 else { throw EdgebertError.unsupported("maxLength < 2") }
        let pieces = tokenize(text).prefix(maxLength - 2)
        let ids = [Int64(clsId)] + pieces.map { Int64(vocab[$0]!) } + [Int64(sepId)]
        return Encoding(inputIds: ids, attentionMask: Array(repeating: 1, count: ids.count),
                        tokenTypeIds: Array(repeating: 0, count: ids.count))
    }
}

// MARK: - The classifier

struct Prediction {
    let label: String
    let score: Double
    let index: Int
    let abstained: Bool
}

/// An artifact folder: manifest.json, labels.json, the model named by deploy.model and, for a token-in
/// model, tokenizer/vocab.txt and tokenizer/tokenizer.json. A text-in model (deploy.input_names is
/// ["text"]) takes the string itself: no tokenizer in the app.
final class EdgebertClassifier {
    let labels: [String]
    private let env: ORTEnv
    private let session: ORTSession
    private let tokenizer: WordPieceTokenizer?  // nil: text-in
    private let maxLength: Int
    private let threshold: Double?
    private let unknownLabel: String

    init(artifact dir: URL, threads: Int32 = 2) throws {
        func data(_ path: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(path)) }
        let manifest = try JSONSerialization.jsonObject(with: data("manifest.json")) as? [String: Any] ?? [:]
        let deploy = manifest["deploy"] as? [String: Any] ?? [:]
        maxLength = deploy["max_length"] as? Int ?? 128
        threshold = deploy["threshold"] as? Double  // null: answer every input
        unknownLabel = deploy["unknown_label"] as? String ?? "unknown"
        let labelsFile = try JSONSerialization.jsonObject(with: data("labels.json")) as? [String: Any]
        guard let names = labelsFile?["labels"] as? [String] else { throw EdgebertError.badFile("labels.json") }
        labels = names
        let textIn = (deploy["input_names"] as? [String]) == ["text"]
        tokenizer = textIn ? nil : try WordPieceTokenizer.fromFiles(vocabTxt: data("tokenizer/vocab.txt"),
                                                                    tokenizerJson: data("tokenizer/tokenizer.json"))
        env = try ORTEnv(loggingLevel: .warning)
        let options = try ORTSessionOptions()
        if textIn { try options.registerCustomOps(functionPointer: RegisterCustomOps) }  // the in-graph tokenizer
        try options.setIntraOpNumThreads(threads)
        try options.addConfigEntry(withKey: "session.intra_op.allow_spinning", value: "0")  // no busy-waiting
        let model = dir.appendingPathComponent(deploy["model"] as? String ?? "model/model.ort").path
        session = try ORTSession(env: env, modelPath: model, sessionOptions: options)
    }

    func predict(_ text: String) throws -> Prediction {
        var inputs: [String: ORTValue] = [:]
        guard let tokenizer = tokenizer else {  // text-in: one string
            inputs["text"] = try ORTValue(tensorStringData: [text], shape: [1])
            return try run(inputs)
        }
        let enc = try tokenizer.encode(text, maxLength: maxLength)
        let rows = ["input_ids": enc.inputIds, "attention_mask": enc.attentionMask, "token_type_ids": enc.tokenTypeIds]
        let shape: [NSNumber] = [1, NSNumber(value: enc.inputIds.count)]
        for name in try session.inputNames() {  // only the inputs the graph declares, by name
            guard let row = rows[name] else { throw EdgebertError.unsupported("model input \(name)") }
            let bytes = row.withUnsafeBytes { NSMutableData(bytes: $0.baseAddress!, length: $0.count) }
            inputs[name] = try ORTValue(tensorData: bytes, elementType: .int64, shape: shape)
        }
        return try run(inputs)
    }

    private func run(_ inputs: [String: ORTValue]) throws -> Prediction {
        let outputNames = try session.outputNames()
        let outputName = outputNames.contains("logits") ? "logits" : outputNames[0]
        let outputs = try session.run(withInputs: inputs, outputNames: [outputName], runOptions: nil)
        guard let out = outputs[outputName] else { throw EdgebertError.unsupported("no output \(outputName)") }
        let raw = try out.tensorData() as Data  // float32, shape (1, labels)
        let logits = raw.withUnsafeBytes { Array($0.bindMemory(to: Float32.self)) }
        let probs = softmax(logits)
        let index = probs.indices.max { probs[$0] < probs[$1] }!
        let score = probs[index]
        let abstained = threshold.map { score < $0 } ?? false
        return Prediction(label: abstained ? unknownLabel : labels[index], score: score, index: index,
                          abstained: abstained)
    }
}

/// Softmax in double precision, as the Python runtime computes it.
func softmax(_ logits: [Float32]) -> [Double] {
    let m = Double(logits.max()!)
    let e = logits.map { Foundation.exp(Double($0) - m) }
    let sum = e.reduce(0, +)
    return e.map { $0 / sum }
}
