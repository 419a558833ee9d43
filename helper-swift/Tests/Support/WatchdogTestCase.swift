// A test case base class with a watchdog: a test that runs longer than its limit (a hang in a
// blocking read, a reply that never comes) aborts the test process with a message naming it,
// so the run fails fast instead of hanging CI.
//
// Example:
//   final class FramingTests: WatchdogTestCase {          // 60 s per test unless overridden
//       override var watchdogSeconds: Double { 20 }
//   }
import Dispatch
import Foundation
import XCTest
import HelperCore

open class WatchdogTestCase: XCTestCase {
    private var watchdog: DispatchWorkItem?

    /// The limit for one test of this class.
    open var watchdogSeconds: Double { 60 }

    open override func setUp() {
        super.setUp()
        let name = self.name, limit = watchdogSeconds
        let item = DispatchWorkItem {
            Sys.log("watchdog: \(name) still running after \(limit) s; aborting the test process")
            Sys.abortProcess()
        }
        watchdog = item
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: item)
    }

    open override func tearDown() {
        watchdog?.cancel()
        watchdog = nil
        super.tearDown()
    }
}
