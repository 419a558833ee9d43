// The Seatbelt profile as text: embedded copy, per-run rules, quoting. (Applying it needs macOS;
// on Linux `apply` must report that nothing was applied.)
import Foundation
import XCTest
import HelperTestSupport
import HelperCore
@testable import HelperSandbox

final class SandboxProfileTests: WatchdogTestCase {
    func testEmbeddedProfileIsTheFileInThePackage() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/HelperSandbox/coreml-helper.sb")
        XCTAssertEqual(HelperSandbox.profileTemplate, try String(contentsOf: file, encoding: .utf8))
        XCTAssertTrue(HelperSandbox.profileTemplate.contains("(deny default)"))
    }

    func testRenderAddsResolvedQuotedRulesInPlaceOfThePlaceholder() throws {
        let dir = "/tmp/cmbt-sb-\(Sys.pid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir + "/real", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/real")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let profile = try HelperSandbox.render(paths: SandboxPaths(read: [dir + "/link"], write: ["/no/such \"dir\""]),
                                               tempDirs: ["/tmp"], cacheDir: "/home/u/Library/Caches/coreml-helper")
        XCTAssertFalse(profile.contains(HelperSandbox.placeholder))
        XCTAssertTrue(profile.contains("(allow file-read* (subpath \"\(dir)/real\"))"), "symlinks resolved (SBPL matches real paths)")
        XCTAssertTrue(profile.contains("(allow file-read* file-write* (subpath \"/no/such \\\"dir\\\"\"))"), "quotes escaped")
        XCTAssertTrue(profile.contains("(allow file-read* file-write* file-issue-extension (subpath \"/home/u/Library/Caches/coreml-helper\"))"))
        // Balanced parentheses outside comments and strings: a cheap SBPL syntax check.
        var depth = 0, inString = false, escaped = false
        for line in profile.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix(";") {
            for c in line {
                if inString {
                    if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                } else if c == "\"" { inString = true } else if c == "(" { depth += 1 } else if c == ")" { depth -= 1; XCTAssertGreaterThanOrEqual(depth, 0) }
            }
        }
        XCTAssertEqual(depth, 0)
        XCTAssertFalse(inString)
    }

    func testUnusablePathsAndMissingPlaceholderAreErrors() {
        XCTAssertThrowsError(try HelperSandbox.quote("relative/path"))
        XCTAssertThrowsError(try HelperSandbox.quote("/a\nb"))
        XCTAssertThrowsError(try HelperSandbox.render(template: "(version 1)", paths: SandboxPaths(), tempDirs: [], cacheDir: nil)) {
            XCTAssertEqual($0 as? SandboxProfileError, .missingPlaceholder)
        }
    }

    func testProfileDropsBroadRules() {
        let t = HelperSandbox.profileTemplate
        let rules = t.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix(";") }.joined(separator: "\n")
        XCTAssertFalse(rules.contains("(allow file-read-metadata)"), "no stat() everywhere")
        XCTAssertFalse(rules.contains("ipc-posix-shm*"), "no create/unlink of shared memory by name")
        XCTAssertTrue(rules.contains("com.apple.cfprefsd.daemon") && rules.contains("opendirectoryd.libinfo"))
    }

    func testRenderAllowsMetadataOnAncestorsOnly() throws {
        let profile = try HelperSandbox.render(paths: SandboxPaths(read: ["/no/such/models"]), tempDirs: [], cacheDir: nil)
        XCTAssertTrue(profile.contains("(allow file-read-metadata (literal \"/no\"))"))
        XCTAssertTrue(profile.contains("(allow file-read-metadata (literal \"/no/such\"))"))
        XCTAssertFalse(profile.contains("(literal \"/no/such/models\")"))
        XCTAssertEqual(HelperSandbox.ancestors("/a/b/c"), ["/a", "/a/b"])
    }

    func testFailsClosedWhenARequiredSandboxDidNotApply() {
        let failed = SandboxStatus(applied: false, detail: "sandbox_init failed: x")
        XCTAssertFalse(HelperSandbox.mayServe(failed, required: true))
        XCTAssertTrue(HelperSandbox.mayServe(failed, required: false))
        XCTAssertTrue(HelperSandbox.mayServe(SandboxStatus(applied: true, detail: ""), required: true))
        // Linux: the supervisor sandboxes the helper, so the helper serves without its own.
        XCTAssertFalse(HelperSandbox.selfSandboxRequired)
    }

    func testLinuxAppliesNothingAndSaysSo() {
        let s = HelperSandbox.apply(paths: SandboxPaths(read: ["/models"]))
        XCTAssertFalse(s.applied)
        XCTAssertTrue(s.detail.contains("supervisor"))
    }
}
