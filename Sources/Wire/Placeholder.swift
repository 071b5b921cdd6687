/// Placeholder until the wire layer lands.
public enum WirePlaceholder {}
