use cairn_wire::*;

#[test]
fn envelope_round_trip_and_verify() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let user = UserId::from_bytes([1; 32]);
    let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
    let header = EnvelopeHeader::new(user, device, 1, 1_700_000_000_000, Scope::Private);
    let env = UnsignedEnvelope {
        header,
        payload: Payload::new(b"hi".to_vec()).unwrap(),
    }
    .sign(&key);
    let bytes = env.encode();
    println!("{} {}", bytes.len(), hex::encode(&bytes));
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back, env);
    back.verify().unwrap();
    println!("{}", env.id());
    let text = user.to_text();
    assert_eq!(text.parse::<UserId>().unwrap(), user);
    println!("{text}");
}
