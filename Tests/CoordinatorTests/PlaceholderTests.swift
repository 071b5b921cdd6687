import Testing
import Coordinator

/// The role is still a placeholder; this test keeps it honest until the real one lands.
@Test func roleIsNotYetImplemented() {
    #expect(CoordinatorRole.isImplemented == false)
}
