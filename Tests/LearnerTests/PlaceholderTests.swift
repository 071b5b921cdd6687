import Testing
import Learner

/// The role is still a placeholder; this test keeps it honest until the real one lands.
@Test func roleIsNotYetImplemented() {
    #expect(LearnerRole.isImplemented == false)
}
