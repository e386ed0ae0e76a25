import Foundation
import Store

// Conversions between Store's value types and etcd v3's protobuf messages (etcdserverpb,
// mvccpb). Pure functions: no I/O.

extension KeyValue {
    init(_ kv: Mvccpb_KeyValue) {
        self.init(key: String(decoding: kv.key, as: UTF8.self), value: [UInt8](kv.value),
                  createRevision: kv.createRevision, modRevision: kv.modRevision,
                  version: kv.version, lease: kv.lease)
    }
}

extension RangeResult {
    init(_ response: Etcdserverpb_RangeResponse) {
        self.init(kvs: response.kvs.map(KeyValue.init), more: response.more,
                  count: response.count, revision: response.header.revision)
    }
}

extension WatchEvent {
    init(_ event: Mvccpb_Event) {
        var kv = KeyValue(event.kv)
        let kind: Kind = event.type == .delete ? .delete : .put
        if kind == .delete {
            kv.value = []
            kv.version = 0
        }
        self.init(kind: kind, kv: kv, previous: event.hasPrevKv ? KeyValue(event.prevKv) : nil)
    }
}

extension Etcdserverpb_RangeRequest {
    init(_ range: KeyRange, revision: Int64?, limit: Int) {
        self.init()
        key = Data(range.start)
        if let end = range.end { rangeEnd = end.isEmpty ? Data([0]) : Data(end) }
        self.limit = Int64(limit)
        self.revision = revision ?? 0
    }
}

extension Etcdserverpb_Compare {
    init(_ compare: Compare) {
        self.init()
        key = Data(compare.key.utf8)
        switch compare.relation {
        case .equal: result = .equal
        case .notEqual: result = .notEqual
        case .greater: result = .greater
        case .less: result = .less
        }
        switch compare.target {
        case .version(let v): target = .version; targetUnion = .version(v)
        case .createRevision(let r): target = .create; targetUnion = .createRevision(r)
        case .modRevision(let r): target = .mod; targetUnion = .modRevision(r)
        case .value(let bytes): target = .value; targetUnion = .value(Data(bytes))
        case .lease(let id): target = .lease; targetUnion = .lease(id)
        }
    }
}

extension Etcdserverpb_RequestOp {
    init(_ operation: TransactionOperation) {
        self.init()
        switch operation {
        case .put(let key, let value, let lease):
            var put = Etcdserverpb_PutRequest()
            put.key = Data(key.utf8)
            put.value = Data(value)
            put.lease = lease
            put.prevKv = true
            request = .requestPut(put)
        case .delete(let range):
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = Data(range.start)
            if let end = range.end { delete.rangeEnd = end.isEmpty ? Data([0]) : Data(end) }
            delete.prevKv = true
            request = .requestDeleteRange(delete)
        case .range(let range, let limit):
            request = .requestRange(Etcdserverpb_RangeRequest(range, revision: nil, limit: limit))
        }
    }
}

extension Etcdserverpb_TxnRequest {
    init(_ transaction: Transaction) {
        self.init()
        compare = transaction.compares.map(Etcdserverpb_Compare.init)
        success = transaction.success.map(Etcdserverpb_RequestOp.init)
        failure = transaction.failure.map(Etcdserverpb_RequestOp.init)
    }
}

extension TransactionResult {
    init(_ response: Etcdserverpb_TxnResponse) {
        let responses: [TransactionResponse] = response.responses.map { op in
            switch op.response {
            case .responsePut(let put)?:
                return .put(previous: put.hasPrevKv ? KeyValue(put.prevKv) : nil)
            case .responseDeleteRange(let delete)?:
                return .delete(deleted: delete.prevKvs.map(KeyValue.init))
            case .responseRange(let range)?:
                // A range inside a txn has no header of its own: it read at the txn's revision.
                var result = RangeResult(range)
                result.revision = response.header.revision
                return .range(result)
            case .responseTxn?, nil:
                return .range(RangeResult(kvs: [], more: false, count: 0, revision: response.header.revision))
            }
        }
        self.init(succeeded: response.succeeded, revision: response.header.revision, responses: responses)
    }
}

extension Etcdserverpb_WatchCreateRequest {
    init(_ range: KeyRange, fromRevision: Int64?) {
        self.init()
        key = Data(range.start)
        if let end = range.end { rangeEnd = end.isEmpty ? Data([0]) : Data(end) }
        startRevision = fromRevision ?? 0
        prevKv = true
    }
}
