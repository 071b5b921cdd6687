import Testing
@testable import Tasks

@Suite struct VerifierTests {
    let exact = ExactMatchVerifier()

    @Test func extractsFirstLineTrimmed() {
        #expect(extractAnswer(from: "  168 \t") == "168")
        #expect(extractAnswer(from: "168\nmore text") == "168")
        #expect(extractAnswer(from: "168\r\n") == "168")
        #expect(extractAnswer(from: "\n168") == "")
        #expect(extractAnswer(from: "") == "")
    }

    @Test(arguments: [
        ("168", "168"), (" 168", "168"), ("168  ", "168"), ("\t168\r", "168"),
        ("+168", "168"), ("0168", "168"), ("000168", "168"), ("168", "+0168"),
        ("-7", "-7"), ("-007", "-7"), ("-0", "0"), ("+0", "0"), ("000", "0"), ("0", "-0"),
        ("168\nand then some", "168"), ("168\n\n999", "168"), ("abcd", "abcd"), (" abcd\n", "abcd"),
    ])
    func correctCompletionsScoreOne(completion: String, answer: String) {
        #expect(exact.reward(completion: completion, answer: answer) == 1)
    }

    @Test(arguments: [
        ("", "168"), ("   ", "168"), ("\n168", "168"), ("169", "168"), ("-168", "168"), ("7", "-7"),
        ("16 8", "168"), ("168abc", "168"), ("abc", "168"), ("168.0", "168"), ("1.68e2", "168"),
        ("+-168", "168"), ("--7", "-7"), ("+", "0"), ("-", "0"), ("１６８", "168"), ("168=", "168"),
        ("ABCD", "abcd"), ("abdc", "abcd"), ("abc d", "abcd"), ("abcd", ""),
    ])
    func wrongOrMalformedCompletionsScoreZero(completion: String, answer: String) {
        #expect(exact.reward(completion: completion, answer: answer) == 0)
    }

    @Test func integerNormalisationHandlesHugeNumbers() {
        let big = "123456789012345678901234567890"
        #expect(exact.reward(completion: "+000" + big, answer: big) == 1)
        #expect(exact.reward(completion: big + "1", answer: big) == 0)
    }

    @Test func numericVerifierUsesAbsoluteTolerance() {
        let v = NumericVerifier(tolerance: 0.01)
        #expect(v.reward(completion: "3.14", answer: "3.1416") == 1)
        #expect(v.reward(completion: " 3.15 \nblah", answer: "3.1416") == 1)
        #expect(v.reward(completion: "3.2", answer: "3.1416") == 0)
        #expect(v.reward(completion: "1e2", answer: "100") == 1)
        #expect(v.reward(completion: "+.5", answer: "0.5") == 1)
        #expect(v.reward(completion: "-0", answer: "0") == 1)
        #expect(NumericVerifier().reward(completion: "168.0", answer: "168") == 1)
        #expect(NumericVerifier().reward(completion: "168.001", answer: "168") == 0)
    }

    @Test(arguments: ["", " ", "abc", "nan", "inf", "-inf", "infinity", "0x10", "1e", "1e+", ".", "-", "1.2.3",
                      "1,5", "1e999", "5 0"])
    func numericVerifierRejectsNonNumbers(completion: String) {
        #expect(NumericVerifier(tolerance: 1e9).reward(completion: completion, answer: "0") == 0)
        #expect(NumericVerifier(tolerance: 1e9).reward(completion: "0", answer: completion) == 0)
    }

    @Test func verifierSpecParsesAndMakes() {
        #expect(VerifierSpec("exact") == .exact)
        #expect(VerifierSpec("numeric") == .numeric(tolerance: 1e-6))
        #expect(VerifierSpec("numeric:0.5") == .numeric(tolerance: 0.5))
        for bad in ["", "Exact", "exact:1", "numeric:", "numeric:-1", "numeric:x", "fuzzy"] {
            #expect(VerifierSpec(bad) == nil, "\(bad)")
        }
        #expect(VerifierSpec(VerifierSpec.numeric(tolerance: 0.25).description) == .numeric(tolerance: 0.25))
        #expect(VerifierSpec.exact.make().reward(completion: "07", answer: "7") == 1)
        #expect(VerifierSpec.numeric(tolerance: 0.5).make().reward(completion: "7.4", answer: "7") == 1)
    }
}
