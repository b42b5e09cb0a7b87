// EdgebertClassifier.kt: classify text on Android with an edgebert `mobile` artifact.
//
// NOT COMPILED in the edgebert repository (it has no Android toolchain). It mirrors tested Python:
//   * tokenisation: edgebert/runtime/wordpiece.py, function for function under the same names
//     (is_whitespace -> isWhitespace, split_on_added_tokens -> splitOnAddedTokens, ...);
//     the spec is docs/tokenization.md;
//   * inference: edgebert.runtime.Classifier (inputs by the session's input names, softmax,
//     arg-max, threshold -> unknown label).
// Gradle: implementation("com.microsoft.onnxruntime:onnxruntime-android:<version>"); for a text-in
// artifact (the mobile recipe's default: the tokenizer is in the model) also
// implementation("com.microsoft.onnxruntime:onnxruntime-extensions-android:<version>") (token-in apps
// without it: delete the OrtxPackage import and the line that registers it).
// Needs API 24+ (String.codePoints, Optional). Setup and usage: docs/mobile.md.
package com.example.edgebert

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import ai.onnxruntime.extensions.OrtxPackage
import android.content.Context
import java.nio.LongBuffer
import java.text.Normalizer
import java.util.Locale
import org.json.JSONObject
import kotlin.math.exp

// ---- Character classes: arguments are code points, never UTF-16 chars ------------------------

private val WHITESPACE: Set<Int> = setOf(0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680) +
    (0x2000..0x200A) + setOf(0x2028, 0x2029, 0x202F, 0x205F, 0x3000)

private val CONTROL_TYPES: Set<Int> = setOf(
    Character.CONTROL, Character.FORMAT, Character.PRIVATE_USE, Character.SURROGATE,
).map { it.toInt() }.toSet()

private val PUNCTUATION_TYPES: Set<Int> = setOf(
    Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
    Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
    Character.OTHER_PUNCTUATION,
).map { it.toInt() }.toSet()

// U+2B820..U+2B91F are not included, as in Hugging Face's tokenizers (docs/tokenization.md).
private val CHINESE_RANGES = listOf(
    0x4E00..0x9FFF, 0x3400..0x4DBF, 0x20000..0x2A6DF, 0x2A700..0x2B73F,
    0x2B740..0x2B81F, 0x2B920..0x2CEAF, 0xF900..0xFAFF, 0x2F800..0x2FA1F,
)

fun isWhitespace(cp: Int): Boolean = cp in WHITESPACE

fun isControl(cp: Int): Boolean =
    cp != 0x09 && cp != 0x0A && cp != 0x0D && Character.getType(cp) in CONTROL_TYPES

fun isPunctuation(cp: Int): Boolean =
    cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126 || Character.getType(cp) in PUNCTUATION_TYPES

fun isChineseChar(cp: Int): Boolean = cp >= 0x3400 && CHINESE_RANGES.any { cp in it }

// ---- Settings and vocabulary -------------------------------------------------------------------

data class TokenizerSettings(
    val cleanText: Boolean = true,
    val handleChineseChars: Boolean = true,
    val stripAccents: Boolean = true,
    val lowercase: Boolean = true,
    val unkToken: String = "[UNK]",
    val clsToken: String = "[CLS]",
    val sepToken: String = "[SEP]",
    val continuingSubwordPrefix: String = "##",
    val maxInputCharsPerWord: Int = 100,
    val addedTokens: List<String> = emptyList(),
)

/** read_settings(), tokenizer.json branch. */
fun readSettings(tokenizerJson: String): TokenizerSettings {
    val tok = JSONObject(tokenizerJson)
    val model = tok.getJSONObject("model")
    require(model.optString("type") == "WordPiece") {
        "${model.optString("type")} tokenizer: only WordPiece (BERT family) is supported, see docs/tokenization.md"
    }
    val norm = tok.getJSONObject("normalizer")
    require(norm.optString("type") == "BertNormalizer") { "normalizer ${norm.optString("type")} is not BertNormalizer" }
    val lowercase = norm.optBoolean("lowercase", true)
    val post = tok.optJSONObject("post_processor") ?: JSONObject()
    var cls = "[CLS]"
    var sep = "[SEP]"
    when (post.optString("type")) {
        "BertProcessing" -> { cls = post.getJSONArray("cls").getString(0); sep = post.getJSONArray("sep").getString(0) }
        "TemplateProcessing" -> {
            val single = post.getJSONArray("single")  // [SpecialToken [CLS]] [Sequence A] [SpecialToken [SEP]]
            cls = single.getJSONObject(0).getJSONObject("SpecialToken").getString("id")
            sep = single.getJSONObject(2).getJSONObject("SpecialToken").getString("id")
        }
    }
    val added = tok.optJSONArray("added_tokens")
    return TokenizerSettings(
        cleanText = norm.optBoolean("clean_text", true),
        handleChineseChars = norm.optBoolean("handle_chinese_chars", true),
        stripAccents = if (norm.isNull("strip_accents")) lowercase else norm.getBoolean("strip_accents"),
        lowercase = lowercase,
        unkToken = model.optString("unk_token", "[UNK]"),
        clsToken = cls,
        sepToken = sep,
        continuingSubwordPrefix = model.optString("continuing_subword_prefix", "##"),
        maxInputCharsPerWord = model.optInt("max_input_chars_per_word", 100),
        addedTokens = List(added?.length() ?: 0) { added!!.getJSONObject(it).getString("content") },
    )
}

/** load_vocab(): line i of vocab.txt is id i. */
fun loadVocab(vocabTxt: String): Map<String, Int> {
    val lines = vocabTxt.split("\n").toMutableList()
    if (lines.isNotEmpty() && lines.last().isEmpty()) lines.removeAt(lines.size - 1)  // final newline
    val vocab = HashMap<String, Int>(lines.size * 2)
    lines.forEachIndexed { i, line -> vocab.putIfAbsent(line.removeSuffix("\r"), i) }
    return vocab
}

// ---- Steps -------------------------------------------------------------------------------------

/** Calls [f] for each code point of the string, collecting what it appends. */
private inline fun String.mapCodePoints(f: (Int, StringBuilder) -> Unit): String {
    val out = StringBuilder(length)
    var i = 0
    while (i < length) {
        val cp = codePointAt(i)
        f(cp, out)
        i += Character.charCount(cp)
    }
    return out.toString()
}

fun splitOnAddedTokens(text: String, addedTokens: List<String>): List<Pair<String, Boolean>> {
    val pieces = mutableListOf<Pair<String, Boolean>>()
    var start = 0
    while (true) {
        var bestPos = -1
        var best = ""
        for (token in addedTokens) {
            val pos = if (token.isEmpty()) -1 else text.indexOf(token, start)
            if (pos >= 0 && (bestPos < 0 || pos < bestPos || (pos == bestPos && token.length > best.length))) {
                bestPos = pos
                best = token
            }
        }
        if (bestPos < 0) break
        if (bestPos > start) pieces.add(text.substring(start, bestPos) to false)
        pieces.add(best to true)
        start = bestPos + best.length
    }
    if (start < text.length) pieces.add(text.substring(start) to false)
    return pieces
}

fun cleanText(text: String): String = text.mapCodePoints { cp, out ->
    if (!(cp == 0 || cp == 0xFFFD || isControl(cp))) {
        if (isWhitespace(cp)) out.append(' ') else out.appendCodePoint(cp)
    }
}

fun padChineseChars(text: String): String = text.mapCodePoints { cp, out ->
    if (isChineseChar(cp)) out.append(' ').appendCodePoint(cp).append(' ') else out.appendCodePoint(cp)
}

fun stripAccents(text: String): String = Normalizer.normalize(text, Normalizer.Form.NFD).mapCodePoints { cp, out ->
    if (Character.getType(cp) != Character.NON_SPACING_MARK.toInt()) out.appendCodePoint(cp)
}

/** One code point at a time: no final-sigma rule (Σ -> σ everywhere), full mappings (İ -> i̇). */
fun lowercase(text: String): String = text.mapCodePoints { cp, out ->
    out.append(String(Character.toChars(cp)).lowercase(Locale.ROOT))
}

fun normalize(text: String, settings: TokenizerSettings): String {
    var t = text
    if (settings.cleanText) t = cleanText(t)
    if (settings.handleChineseChars) t = padChineseChars(t)
    if (settings.stripAccents) t = stripAccents(t)
    if (settings.lowercase) t = lowercase(t)
    return t
}

fun preTokenize(text: String): List<String> {
    val words = mutableListOf<String>()
    val current = StringBuilder()
    var i = 0
    while (i < text.length) {
        val cp = text.codePointAt(i)
        i += Character.charCount(cp)
        if (isWhitespace(cp) || isPunctuation(cp)) {
            if (current.isNotEmpty()) { words.add(current.toString()); current.setLength(0) }
            if (!isWhitespace(cp)) words.add(String(Character.toChars(cp)))
        } else {
            current.appendCodePoint(cp)
        }
    }
    if (current.isNotEmpty()) words.add(current.toString())
    return words
}

fun wordpiece(word: String, vocab: Map<String, Int>, settings: TokenizerSettings): List<String> {
    val cps = word.codePoints().toArray()  // lengths and slices in code points
    if (cps.size > settings.maxInputCharsPerWord) return listOf(settings.unkToken)
    val pieces = mutableListOf<String>()
    var start = 0
    while (start < cps.size) {
        var end = cps.size
        var piece: String? = null
        while (end > start) {
            var candidate = String(cps, start, end - start)
            if (start > 0) candidate = settings.continuingSubwordPrefix + candidate
            if (candidate in vocab) { piece = candidate; break }
            end -= 1
        }
        if (piece == null) return listOf(settings.unkToken)
        pieces.add(piece)
        start = end
    }
    return pieces
}

/** encode()'s result: three int64 rows of the same length, fed as tensors of shape [1, n]. */
class Encoding(val inputIds: LongArray, val attentionMask: LongArray, val tokenTypeIds: LongArray)

class WordPieceTokenizer(private val vocab: Map<String, Int>, private val settings: TokenizerSettings) {
    private val clsId = vocab.getValue(settings.clsToken)
    private val sepId = vocab.getValue(settings.sepToken)

    fun tokenize(text: String): List<String> {
        val tokens = mutableListOf<String>()
        for ((piece, isAdded) in splitOnAddedTokens(text, settings.addedTokens)) {
            if (isAdded) { tokens.add(piece); continue }
            for (word in preTokenize(normalize(piece, settings))) tokens.addAll(wordpiece(word, vocab, settings))
        }
        return tokens
    }

    fun encode(text: String, maxLength: Int): Encoding {
        require(maxLength >= 2) { "maxLength must be >= 2 ([CLS] and [SEP])" }
        val pieces = tokenize(text).take(maxLength - 2)
        val ids = LongArray(pieces.size + 2)
        ids[0] = clsId.toLong()
        pieces.forEachIndexed { i, p -> ids[i + 1] = vocab.getValue(p).toLong() }
        ids[ids.size - 1] = sepId.toLong()
        return Encoding(ids, LongArray(ids.size) { 1L }, LongArray(ids.size))
    }

    companion object {
        /** from_folder(): vocab.txt for the ids, tokenizer.json for the settings. */
        fun fromFiles(vocabTxt: String, tokenizerJson: String) =
            WordPieceTokenizer(loadVocab(vocabTxt), readSettings(tokenizerJson))
    }
}

// ---- The classifier ----------------------------------------------------------------------------

data class Prediction(val label: String, val score: Double, val index: Int, val abstained: Boolean)

/**
 * An artifact folder read through [read] (relative path -> bytes): manifest.json, labels.json, the model
 * named by deploy.model and, for a token-in model, tokenizer/vocab.txt and tokenizer/tokenizer.json. A
 * text-in model (deploy.input_names is ["text"]) takes the string itself: no tokenizer in the app.
 */
class EdgebertClassifier(read: (String) -> ByteArray, threads: Int = 2) : AutoCloseable {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession
    private val tokenizer: WordPieceTokenizer?  // null: text-in
    val labels: List<String>
    private val maxLength: Int
    private val threshold: Double?
    private val unknownLabel: String

    init {
        fun text(path: String) = String(read(path), Charsets.UTF_8)
        val deploy = JSONObject(text("manifest.json")).optJSONObject("deploy") ?: JSONObject()
        maxLength = deploy.optInt("max_length", 128)
        threshold = if (deploy.isNull("threshold")) null else deploy.getDouble("threshold")
        unknownLabel = deploy.optString("unknown_label", "unknown")
        val names = JSONObject(text("labels.json")).getJSONArray("labels")
        labels = List(names.length()) { names.getString(it) }
        val inputNames = deploy.optJSONArray("input_names")
        val textIn = inputNames != null && (0 until inputNames.length()).any { inputNames.getString(it) == "text" }
        tokenizer = if (textIn) null else
            WordPieceTokenizer.fromFiles(text("tokenizer/vocab.txt"), text("tokenizer/tokenizer.json"))
        session = OrtSession.SessionOptions().use { options ->
            if (textIn) options.registerCustomOpLibrary(OrtxPackage.getLibraryPath())  // the in-graph tokenizer
            options.setIntraOpNumThreads(threads)
            options.addConfigEntry("session.intra_op.allow_spinning", "0")  // no busy-waiting threads
            env.createSession(read(deploy.optString("model", "model/model.ort")), options)
        }
    }

    fun predict(text: String): Prediction {
        val inputs = if (tokenizer == null) {
            mapOf("text" to OnnxTensor.createTensor(env, arrayOf(text), longArrayOf(1)))  // text-in: one string
        } else {
            val enc = tokenizer.encode(text, maxLength)
            val shape = longArrayOf(1, enc.inputIds.size.toLong())
            val rows = mapOf("input_ids" to enc.inputIds, "attention_mask" to enc.attentionMask,
                             "token_type_ids" to enc.tokenTypeIds)
            // only the inputs the graph declares, by name
            session.inputNames.associateWith { OnnxTensor.createTensor(env, LongBuffer.wrap(rows.getValue(it)), shape) }
        }
        try {
            session.run(inputs).use { result ->
                @Suppress("UNCHECKED_CAST")
                val logits = (result.get("logits").orElse(result.get(0)).value as Array<FloatArray>)[0]  // (1, labels)
                val probs = softmax(logits)
                val index = probs.indices.maxByOrNull { probs[it] }!!
                val score = probs[index]
                val abstained = threshold != null && score < threshold
                return Prediction(if (abstained) unknownLabel else labels[index], score, index, abstained)
            }
        } finally {
            inputs.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()

    companion object {
        /** The artifact copied into the app's assets under [dir] (e.g. src/main/assets/edgebert/). */
        fun fromAssets(context: Context, dir: String = "edgebert", threads: Int = 2) =
            EdgebertClassifier({ path -> context.assets.open("$dir/$path").use { it.readBytes() } }, threads)
    }
}

/** Softmax in double precision, as the Python runtime computes it. */
fun softmax(logits: FloatArray): DoubleArray {
    val max = logits.maxOrNull()!!.toDouble()
    val e = DoubleArray(logits.size) { exp(logits[it] - max) }
    val sum = e.sum()
    return DoubleArray(e.size) { e[it] / sum }
}
