//! Plausible names for simulated persons (never real people).

use rand::{Rng, rngs::StdRng};

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢",
];
const GIVEN: [&str; 24] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "玉兰", "志强",
];

/// A name such as 王志强.
pub(crate) fn person(rng: &mut StdRng) -> String {
    let mut s = String::from(SURNAMES[rng.random_range(0..SURNAMES.len())]);
    s.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    if rng.random_bool(0.4) {
        s.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    }
    s
}
