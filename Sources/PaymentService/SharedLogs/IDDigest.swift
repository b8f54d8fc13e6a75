/// A 128-bit digest of an id (a client or payment id): what the registry and the claim arbiter keep in memory instead
/// of the id itself.
///
/// An id of over 15 bytes costs a heap allocation as a `String`; a digest is 16 bytes inline, so a million clients
/// and a million settled payments fit in tens of megabytes instead of hundreds, and hash quickly. The two halves come
/// from two different fixed functions (FNV-1a, and a multiply–rotate mix with a SplitMix64 finish), so the digest is
/// the same in every process, and two of a million distinct ids share one with a probability around 10⁻²⁷.
struct IDDigest: Hashable, Sendable {
    let high: UInt64
    let low: UInt64

    init(_ id: String) {
        var fnv: UInt64 = 0xcbf2_9ce4_8422_2325
        var mix: UInt64 = 0x9e37_79b9_7f4a_7c15
        var count: UInt64 = 0
        for byte in id.utf8 {
            fnv = (fnv ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            mix = ((mix ^ UInt64(byte)) &* 0xff51_afd7_ed55_8ccd)
            mix = (mix << 29) | (mix >> 35)
            count &+= 1
        }
        high = fnv ^ count
        low = Self.finish(mix ^ (count &* 0xc4ce_b9fe_1a85_ec53))
    }

    /// SplitMix64's finaliser: spreads every input bit over the whole word.
    private static func finish(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
