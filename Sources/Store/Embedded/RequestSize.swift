/// The size of a ``Transaction`` as etcd measures it against `--max-request-bytes`: the length
/// of its `etcdserverpb.TxnRequest` protobuf encoding (compares, then the operations of both
/// branches as `RequestOp`s), so the embedded store rejects the requests etcd rejects.
enum RequestSize {
    static func of(_ transaction: Transaction) -> Int {
        var total = 0
        for compare in transaction.compares { total += field(1, message: compareSize(compare)) }
        for operation in transaction.success { total += field(2, message: operationSize(operation)) }
        for operation in transaction.failure { total += field(3, message: operationSize(operation)) }
        return total
    }

    private static func varintSize(_ value: UInt64) -> Int {
        var value = value
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    /// A length-delimited field (tag < 16: one byte).
    private static func field(_ tag: Int, message length: Int) -> Int {
        (tag < 16 ? 1 : 2) + varintSize(UInt64(length)) + length
    }

    private static func bytesField(_ tag: Int, _ bytes: some Collection) -> Int {
        bytes.isEmpty ? 0 : field(tag, message: bytes.count)
    }

    private static func int64Field(_ value: Int64, always: Bool = false) -> Int {
        value == 0 && !always ? 0 : 1 + varintSize(UInt64(bitPattern: value))
    }

    private static func compareSize(_ compare: Compare) -> Int {
        var size = bytesField(3, compare.key.utf8)
        size += compare.relation == .equal ? 0 : 2  // result enum
        switch compare.target {
        case .version(let value): size += int64Field(value, always: true)
        case .createRevision(let value): size += 2 + int64Field(value, always: true)
        case .modRevision(let value): size += 2 + int64Field(value, always: true)
        case .value(let value): size += 2 + field(7, message: value.count)
        case .lease(let value): size += 2 + int64Field(value, always: true)
        }
        return size
    }

    private static func operationSize(_ operation: TransactionOperation) -> Int {
        switch operation {
        case .put(let key, let value, let lease):
            field(2, message: bytesField(1, key.utf8) + bytesField(2, value) + int64Field(lease))
        case .delete(let range):
            field(3, message: bytesField(1, range.start) + bytesField(2, range.end ?? []))
        case .range(let range, let limit):
            field(1, message: bytesField(1, range.start) + bytesField(2, range.end ?? []) + int64Field(Int64(limit)))
        }
    }
}
