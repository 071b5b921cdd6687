import Testing
import RolloutActor

/// The role is still a placeholder; this test keeps it honest until the real one lands.
@Test func roleIsNotYetImplemented() {
    #expect(RolloutWorker.isImplemented == false)
}
